"""sim/binance"""
