"""Binance's wire protocol itself, shared by the client side (`mm_daemon.venues`) and the
server side (`mm_daemon.sim`), importing neither.

- `markets`: dialects (spot, USD-M), exchange ids, stream names, ccxt options and test URLs,
  the instruments of the recorded markets.
- `frames`: depth, trade and snapshot frames into core events (integer ticks and lots).
- `depth`: the book-sync procedure (buffer, snapshot, continuity), one implementation for the
  live reader, the replay and the simulator's replay book.
- `capture`: the capture format (writer, reader, data folder).
- `numbers`: prices and sizes as the venue prints them.
- `signing`: HMAC-SHA256 signatures of signed requests, made and checked.
"""
