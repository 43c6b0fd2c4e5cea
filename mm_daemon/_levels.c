/*
 * One file, kept whole on purpose: it is one extension module, and the number readers and the
 * level writer below are static helpers that the compiler inlines into every parser of the
 * hot path (parse_depth, parse_trade, apply_levels, apply_side); split into several
 * translation units they would become calls across files on every level.
 *
 * Binance depth levels into a book side, compiled: the per-level loop of the market-data hot
 * path (mm_daemon.venues.binance_stream), which in Python costs about half a microsecond a
 * level in dictionary look-ups alone.
 *
 * apply_side(levels, book, heap, negate, tick, lot) -> tuple of (price_ticks, size_lots)
 *
 * For each [price, qty] of `levels`, in order, exactly what the Python loop does:
 *   px = round(float(price) / tick); sz = round(float(qty) / lot)
 *   sz > 0: push px (negated when `negate`) on `heap` if px is not in `book`; book[px] = sz
 *   sz == 0: book.pop(px, None)
 * and returns the (px, sz) pairs as a tuple. Plain decimal text (Binance's: digits and a
 * point) is read digit by digit, with no string-to-double conversion, and divided once by the
 * unit scaled to the text's decimals: for every price on the tick grid and size on the lot
 * grid this is the integer the Python loop computes (a text off the grid lying exactly half
 * way between two units may round the other way). Other text goes through Python's own float
 * reading. Text that is not a finite number raises ValueError; a level that is not a pair raises ValueError or
 * TypeError, as unpacking it in Python would. Levels before the bad one stay applied: the
 * caller treats the book as out of sync, as it does for the Python loop.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stddef.h>
#include <structmember.h>

static const double POW10[19] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
    1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
};

static int
scan_plain_decimal(const char *text, const char *end, long long *digits, int *decimals,
                   const char **stop)
{
    /*
     * Digits, an optional point, digits. At most 15 significant digits (leading zeros do not
     * count, trailing ones do) so that the value is exact in a double: checked once at the
     * end as value < 10^15, with a bound inside the loops that keeps it from overflowing.
     */
    const long long limit = 1000000000000000LL; /* 10^15 */
    long long value = 0;
    const char *p = text;
    while (p < end && (unsigned char)(*p - '0') <= 9) {
        value = value * 10 + (*p - '0');
        p++;
        if (value >= limit) {
            return -1;
        }
    }
    int after_point = -1;
    if (p < end && *p == '.') {
        const char *fraction = ++p;
        while (p < end && (unsigned char)(*p - '0') <= 9) {
            value = value * 10 + (*p - '0');
            p++;
            if (value >= limit) {
                return -1;
            }
        }
        after_point = (int)(p - fraction);
    }
    *stop = p;
    Py_ssize_t size = p - text;
    if (size == 0 || (after_point == 0 && size == 1) || after_point > 18) {
        return -1;
    }
    *digits = value;
    *decimals = after_point < 0 ? 0 : after_point;
    return 0;
}

/*
 * Plain decimal text ("59996.66000000", "0.250", "12") as digits and a decimal count, for up
 * to 15 significant digits (exact in a double). 0 on success; -1 for anything else (signs,
 * exponents, spaces, longer numbers), which the caller reads with Python's own float().
 */
static int
read_plain_decimal(const char *text, Py_ssize_t size, long long *digits, int *decimals)
{
    const char *stop;
    if (scan_plain_decimal(text, text + size, digits, decimals, &stop) < 0 || stop != text + size) {
        return -1;
    }
    return 0;
}

/* float(obj) / unit, rounded half to even: the same integer the Python loop computes. */
static PyObject *
to_units(PyObject *obj, double unit)
{
    double value;
    if (PyUnicode_Check(obj)) {
        Py_ssize_t size;
        const char *text = PyUnicode_AsUTF8AndSize(obj, &size);
        if (text == NULL) {
            return NULL;
        }
        long long digits;
        int decimals;
        if (read_plain_decimal(text, size, &digits, &decimals) == 0) {
            /* digits / 10^decimals is the decimal's value; one division keeps one rounding */
            value = (double)digits / (unit * POW10[decimals]);
            double scaled = nearbyint(value);
            return PyLong_FromLongLong((long long)scaled);
        }
        char *end = NULL;
        value = PyOS_string_to_double(text, &end, NULL);
        if (value == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
        if (size == 0 || end != text + size) {
            PyErr_Format(PyExc_ValueError, "not a number: %R", obj);
            return NULL;
        }
    }
    else {
        value = PyFloat_AsDouble(obj);
        if (value == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
    }
    double scaled = nearbyint(value / unit);
    if (!isfinite(scaled) || fabs(scaled) >= 9.0e18) {
        PyErr_Format(PyExc_ValueError, "out of range: %R", obj);
        return NULL;
    }
    return PyLong_FromLongLong((long long)scaled);
}

/*
 * heapq.heappush(heap, key) for a heap of ints, without the call: append, then move the new
 * key up past every parent it is smaller than (heapq's own sift, so the list is the same).
 * Entries are only moved between slots, so no reference count changes.
 */
static int
heap_push_int(PyObject *heap, PyObject *key)
{
    long long value = PyLong_AsLongLong(key);
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (PyList_Append(heap, key) < 0) {
        return -1;
    }
    PyObject **items = ((PyListObject *)heap)->ob_item;
    Py_ssize_t pos = PyList_GET_SIZE(heap) - 1;
    PyObject *item = items[pos];
    while (pos > 0) {
        Py_ssize_t parent = (pos - 1) >> 1;
        PyObject *above = items[parent];
        long long above_value = PyLong_AsLongLong(above);
        if (above_value == -1 && PyErr_Occurred()) {
            return -1;
        }
        if (!(value < above_value)) {
            break;
        }
        items[pos] = above;
        pos = parent;
    }
    items[pos] = item;
    return 0;
}

/*
 * One level into a book side, as the Python loop writes it: a live size pushes the price
 * (negated for bids) on the heap when it is new and sets it; size 0 removes the price if
 * present (no KeyError is raised and cleared: deletes of unknown prices are common).
 */
static int
write_level(PyObject *book, PyObject *heap, int negate, PyObject *px, PyObject *sz)
{
    int live = PyObject_IsTrue(sz);
    if (live < 0) {
        return -1;
    }
    if (!live) {
        int present = PyDict_Contains(book, px);
        if (present < 0) {
            return -1;
        }
        return present ? PyDict_DelItem(book, px) : 0;
    }
    /* one lookup, not two: the dict grows exactly when the price is new */
    Py_ssize_t before = PyDict_GET_SIZE(book);
    if (PyDict_SetItem(book, px, sz) < 0) {
        return -1;
    }
    if (PyDict_GET_SIZE(book) == before) {
        return 0;
    }
    PyObject *key = negate ? PyNumber_Negative(px) : Py_NewRef(px);
    if (key == NULL) {
        return -1;
    }
    int rc = heap_push_int(heap, key);
    Py_DECREF(key);
    return rc;
}

static PyObject *
apply_side(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 6) {
        PyErr_SetString(PyExc_TypeError, "apply_side(levels, book, heap, negate, tick, lot)");
        return NULL;
    }
    PyObject *levels = args[0];
    PyObject *book = args[1];
    PyObject *heap = args[2];
    int negate = PyObject_IsTrue(args[3]);
    double tick = PyFloat_AsDouble(args[4]);
    double lot = PyFloat_AsDouble(args[5]);
    if (negate < 0 || PyErr_Occurred()) {
        return NULL;
    }
    if (!PyDict_CheckExact(book) || !PyList_Check(heap)) {
        PyErr_SetString(PyExc_TypeError, "book must be a dict and heap a list");
        return NULL;
    }
    if (tick <= 0.0 || lot <= 0.0) {
        PyErr_SetString(PyExc_ValueError, "tick and lot must be positive");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(levels, "levels must be a sequence");
    if (seq == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyTuple_New(n);
    if (out == NULL) {
        Py_DECREF(seq);
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *level = PySequence_Fast_GET_ITEM(seq, i);
        PyObject *pair = PySequence_Fast(level, "a level must be a [price, qty] pair");
        if (pair == NULL) {
            goto fail;
        }
        if (PySequence_Fast_GET_SIZE(pair) != 2) {
            Py_DECREF(pair);
            PyErr_SetString(PyExc_ValueError, "a level must be a [price, qty] pair");
            goto fail;
        }
        PyObject *px = to_units(PySequence_Fast_GET_ITEM(pair, 0), tick);
        if (px == NULL) {
            Py_DECREF(pair);
            goto fail;
        }
        PyObject *sz = to_units(PySequence_Fast_GET_ITEM(pair, 1), lot);
        Py_DECREF(pair);
        if (sz == NULL) {
            Py_DECREF(px);
            goto fail;
        }
        if (write_level(book, heap, negate, px, sz) < 0) {
            Py_DECREF(px);
            Py_DECREF(sz);
            goto fail;
        }
        PyObject *item = PyTuple_Pack(2, px, sz);
        Py_DECREF(px);
        Py_DECREF(sz);
        if (item == NULL) {
            goto fail;
        }
        PyTuple_SET_ITEM(out, i, item);
    }
    Py_DECREF(seq);
    return out;

fail:
    Py_DECREF(seq);
    Py_DECREF(out);
    return NULL;
}


/* -- whole frames ------------------------------------------------------------------------- */

/*
 * A reader for the frames Binance's depth and trade streams send, and nothing more: one object
 * (or a combined-stream envelope {"stream":..,"data":{..}}) whose values are strings without
 * escapes, integers, true/false/null, and for "b"/"a" arrays of [price, qty] string pairs.
 * Anything else (escapes, floats, other nesting, a level text that is not plain decimal, a
 * different event or symbol) makes the reader give up and the caller takes its general path
 * (orjson and the Python checks), which also counts and logs what is malformed. So this reader
 * never decides that a frame is bad; it only recognises the common good ones.
 */

typedef struct {
    const char *p;
    const char *end;
} Cursor;

typedef struct {
    long long *pairs; /* px, sz, px, sz, ... */
    Py_ssize_t count;
    Py_ssize_t capacity;
    long long inline_pairs[2 * 48];
} Levels;

typedef struct {
    const char *event;
    Py_ssize_t event_len;
    const char *symbol;
    Py_ssize_t symbol_len;
    const char *price;
    Py_ssize_t price_len;
    const char *qty;
    Py_ssize_t qty_len;
    const char *status; /* USD-M trades: "X" */
    Py_ssize_t status_len;
    long long E, T, U, u, pu, t;
    int has_E, has_T, has_U, has_u, has_pu, has_t, has_b, has_a, has_m, m;
    double tick, lot;
    Levels bids, asks;
} Frame;

static inline void
skip_ws(Cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\n' || *c->p == '\r' || *c->p == '\t')) {
        c->p++;
    }
}

static inline int
expect(Cursor *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 0;
    }
    return -1;
}

/* A string of printable ASCII with no escapes (what Binance sends); -1 for anything else. */
static int
read_string(Cursor *c, const char **text, Py_ssize_t *len)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != '"') {
        return -1;
    }
    const char *start = ++c->p;
    for (const char *p = start; p < c->end; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"') {
            *text = start;
            *len = p - start;
            c->p = p + 1;
            return 0;
        }
        if (ch == '\\' || ch < 0x20 || ch >= 0x80) {
            return -1;
        }
    }
    return -1;
}

/* A JSON integer of at most 18 digits; a fraction or exponent gives up. */
static int
read_int(Cursor *c, long long *out)
{
    skip_ws(c);
    int negative = 0;
    if (c->p < c->end && *c->p == '-') {
        negative = 1;
        c->p++;
    }
    long long value = 0;
    int digits = 0;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
        if (++digits > 18) {
            return -1;
        }
        value = value * 10 + (*c->p - '0');
        c->p++;
    }
    if (digits == 0 || (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))) {
        return -1;
    }
    if (digits > 1 && c->p[-digits] == '0') {
        return -1; /* a leading zero is not JSON */
    }
    *out = negative ? -value : value;
    return 0;
}

static int
read_literal(Cursor *c, const char *word, size_t len)
{
    if ((size_t)(c->end - c->p) >= len && memcmp(c->p, word, len) == 0) {
        c->p += len;
        return 0;
    }
    return -1;
}

static int
read_bool(Cursor *c, int *out)
{
    skip_ws(c);
    if (read_literal(c, "true", 4) == 0) {
        *out = 1;
        return 0;
    }
    if (read_literal(c, "false", 5) == 0) {
        *out = 0;
        return 0;
    }
    return -1;
}

/* A value this reader does not need: a string, an integer, true, false or null. */
static int
skip_scalar(Cursor *c)
{
    skip_ws(c);
    if (c->p >= c->end) {
        return -1;
    }
    char ch = *c->p;
    if (ch == '"') {
        const char *text;
        Py_ssize_t len;
        return read_string(c, &text, &len);
    }
    if (ch == '-' || (ch >= '0' && ch <= '9')) {
        long long ignored;
        return read_int(c, &ignored);
    }
    if (read_literal(c, "true", 4) == 0 || read_literal(c, "false", 5) == 0 ||
        read_literal(c, "null", 4) == 0) {
        return 0;
    }
    return -1;
}

/*
 * digits / 10^decimals in units of `unit`, or -1 when the text is off the unit grid. Binance's
 * prices and sizes are always on the grid; off it (a damaged frame) the frame readers refuse
 * the frame, so the general path decides, rather than rounding a half unit its own way.
 */
static int
grid_units(long long digits, int decimals, double unit, long long *out)
{
    double units = (double)digits / (unit * POW10[decimals]);
    double nearest = nearbyint(units);
    if (fabs(units - nearest) > 1e-3) {
        return -1;
    }
    *out = (long long)nearest;
    return 0;
}

/* Plain decimal text in units of `unit`; -1 for any other text, or off the grid. */
static int
text_units(const char *text, Py_ssize_t len, double unit, long long *out)
{
    long long digits;
    int decimals;
    if (read_plain_decimal(text, len, &digits, &decimals) < 0) {
        return -1;
    }
    return grid_units(digits, decimals, unit, out);
}

/* A quoted plain decimal in units of `unit`, read in one pass; -1 for any other value. */
static int
read_quoted_units(Cursor *c, double unit, long long *out)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != '"') {
        return -1;
    }
    long long digits;
    int decimals;
    const char *stop;
    if (scan_plain_decimal(c->p + 1, c->end, &digits, &decimals, &stop) < 0 || stop >= c->end ||
        *stop != '"') {
        return -1;
    }
    c->p = stop + 1;
    return grid_units(digits, decimals, unit, out);
}

static int
levels_push(Levels *levels, long long px, long long sz)
{
    if (levels->count == levels->capacity) {
        Py_ssize_t capacity = levels->capacity * 2;
        long long *grown;
        if (levels->pairs == levels->inline_pairs) {
            grown = PyMem_Malloc((size_t)capacity * 2 * sizeof(long long));
            if (grown != NULL) {
                memcpy(grown, levels->pairs, (size_t)levels->count * 2 * sizeof(long long));
            }
        }
        else {
            grown = PyMem_Realloc(levels->pairs, (size_t)capacity * 2 * sizeof(long long));
        }
        if (grown == NULL) {
            return -1;
        }
        levels->pairs = grown;
        levels->capacity = capacity;
    }
    levels->pairs[2 * levels->count] = px;
    levels->pairs[2 * levels->count + 1] = sz;
    levels->count++;
    return 0;
}

static void
levels_init(Levels *levels)
{
    levels->pairs = levels->inline_pairs;
    levels->count = 0;
    levels->capacity = 48;
}

static void
levels_free(Levels *levels)
{
    if (levels->pairs != levels->inline_pairs) {
        PyMem_Free(levels->pairs);
    }
    levels->pairs = levels->inline_pairs;
}

/* [["price","qty"], ...] in ticks and lots. */
static int
read_levels(Cursor *c, Frame *f, Levels *out)
{
    if (expect(c, '[') < 0) {
        return -1;
    }
    skip_ws(c);
    if (c->p < c->end && *c->p == ']') {
        c->p++;
        return 0;
    }
    for (;;) {
        long long px, sz;
        if (expect(c, '[') < 0 || read_quoted_units(c, f->tick, &px) < 0 || expect(c, ',') < 0 ||
            read_quoted_units(c, f->lot, &sz) < 0 || expect(c, ']') < 0 ||
            levels_push(out, px, sz) < 0) {
            return -1;
        }
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        return expect(c, ']');
    }
}

#define KEY_IS(text, len, word) ((len) == (Py_ssize_t)(sizeof(word) - 1) && memcmp((text), (word), (len)) == 0)

static int
read_object(Cursor *c, Frame *f)
{
    if (expect(c, '{') < 0) {
        return -1;
    }
    skip_ws(c);
    if (c->p < c->end && *c->p == '}') {
        c->p++;
        return 0;
    }
    for (;;) {
        const char *key;
        Py_ssize_t len;
        int rc;
        if (read_string(c, &key, &len) < 0 || expect(c, ':') < 0) {
            return -1;
        }
        if (len == 1) {
            switch (key[0]) {
            case 'e': rc = read_string(c, &f->event, &f->event_len); break;
            case 's': rc = read_string(c, &f->symbol, &f->symbol_len); break;
            case 'p': rc = read_string(c, &f->price, &f->price_len); break;
            case 'q': rc = read_string(c, &f->qty, &f->qty_len); break;
            case 'X': rc = read_string(c, &f->status, &f->status_len); break;
            case 'E': rc = read_int(c, &f->E); f->has_E = 1; break;
            case 'T': rc = read_int(c, &f->T); f->has_T = 1; break;
            case 'U': rc = read_int(c, &f->U); f->has_U = 1; break;
            case 'u': rc = read_int(c, &f->u); f->has_u = 1; break;
            case 't': rc = read_int(c, &f->t); f->has_t = 1; break;
            case 'm': rc = read_bool(c, &f->m); f->has_m = 1; break;
            case 'b':
            case 'a': {
                /* depth levels; in spot trades of old, "b"/"a" were order ids (skipped) */
                skip_ws(c);
                if (c->p >= c->end || *c->p != '[') {
                    rc = skip_scalar(c);
                    break;
                }
                int *seen = key[0] == 'b' ? &f->has_b : &f->has_a;
                /* a second one would replace the first for a JSON reader: leave it to one */
                rc = *seen ? -1 : read_levels(c, f, key[0] == 'b' ? &f->bids : &f->asks);
                *seen = 1;
                break;
            }
            default: rc = skip_scalar(c); break;
            }
        }
        else if (KEY_IS(key, len, "pu")) {
            rc = read_int(c, &f->pu);
            f->has_pu = 1;
        }
        else if (KEY_IS(key, len, "stream") || KEY_IS(key, len, "data")) {
            return -1; /* an envelope only in its own form (read_frame_object) */
        }
        else {
            rc = skip_scalar(c);
        }
        if (rc < 0) {
            return -1;
        }
        skip_ws(c);
        if (c->p < c->end && *c->p == ',') {
            c->p++;
            continue;
        }
        return expect(c, '}');
    }
}

/*
 * A frame: the event object itself, or Binance's combined-stream envelope
 * {"stream":"<name>","data":{...}} in that form, which the general path reads as `data`.
 */
static int
read_frame_object(Cursor *c, Frame *f)
{
    Cursor probe = *c;
    const char *key;
    Py_ssize_t len;
    if (expect(&probe, '{') < 0 || read_string(&probe, &key, &len) < 0 ||
        !KEY_IS(key, len, "stream")) {
        return read_object(c, f);
    }
    const char *name;
    Py_ssize_t name_len;
    if (expect(&probe, ':') < 0 || read_string(&probe, &name, &name_len) < 0 ||
        expect(&probe, ',') < 0 || read_string(&probe, &key, &len) < 0 ||
        !KEY_IS(key, len, "data") || expect(&probe, ':') < 0 || read_object(&probe, f) < 0 ||
        expect(&probe, '}') < 0) {
        return -1;
    }
    *c = probe;
    return 0;
}

/*
 * The int objects of recent prices and sizes, one per slot of a direct-mapped cache: the same
 * price comes back as the same object, so the book's dict finds it by identity instead of
 * comparing two equal ints, and no int is allocated for it.
 */
#define INT_CACHE_SLOTS 4096
typedef struct {
    long long value;
    PyObject *obj;
} CachedInt;
static CachedInt price_ints[INT_CACHE_SLOTS];
static CachedInt size_ints[INT_CACHE_SLOTS];

static PyObject *
cached_int(CachedInt *cache, long long value)
{
    CachedInt *slot = &cache[(unsigned long long)value & (INT_CACHE_SLOTS - 1)];
    if (slot->obj != NULL && slot->value == value) {
        return Py_NewRef(slot->obj);
    }
    PyObject *obj = PyLong_FromLongLong(value);
    if (obj == NULL) {
        return NULL;
    }
    PyObject *old = slot->obj;
    slot->obj = Py_NewRef(obj);
    slot->value = value;
    Py_XDECREF(old);
    return obj;
}

static PyObject *
levels_tuple(const Levels *levels)
{
    PyObject *out = PyTuple_New(levels->count);
    if (out == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < levels->count; i++) {
        PyObject *item = PyTuple_New(2);
        PyObject *px = item == NULL ? NULL : cached_int(price_ints, levels->pairs[2 * i]);
        PyObject *sz = px == NULL ? NULL : cached_int(size_ints, levels->pairs[2 * i + 1]);
        if (sz == NULL) {
            Py_XDECREF(px);
            Py_XDECREF(item);
            Py_DECREF(out);
            return NULL;
        }
        PyTuple_SET_ITEM(item, 0, px);
        PyTuple_SET_ITEM(item, 1, sz);
        PyTuple_SET_ITEM(out, i, item);
    }
    return out;
}

/* Parse `raw` into `f`; 1 when it is a whole object of `event` for `symbol`, else 0. */
static int
read_frame(PyObject *const *args, Py_ssize_t nargs, const char *name, Frame *f,
           const char *event, Py_ssize_t event_len)
{
    /* first of all: the caller frees the level buffers whatever this returns */
    memset(f, 0, offsetof(Frame, bids));
    levels_init(&f->bids);
    levels_init(&f->asks);
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "%s(raw, symbol, tick, lot)", name);
        return -1;
    }
    if (!PyBytes_Check(args[0]) || !PyBytes_Check(args[1])) {
        return 0; /* text frames take the general path */
    }
    f->tick = PyFloat_AsDouble(args[2]);
    f->lot = PyFloat_AsDouble(args[3]);
    if (PyErr_Occurred()) {
        return -1;
    }
    if (!(f->tick > 0.0) || !(f->lot > 0.0)) {
        PyErr_SetString(PyExc_ValueError, "tick and lot must be positive");
        return -1;
    }
    const char *raw = PyBytes_AS_STRING(args[0]);
    Cursor c = {raw, raw + PyBytes_GET_SIZE(args[0])};
    if (read_frame_object(&c, f) < 0) {
        return PyErr_Occurred() ? -1 : 0;
    }
    skip_ws(&c);
    const char *symbol = PyBytes_AS_STRING(args[1]);
    Py_ssize_t symbol_len = PyBytes_GET_SIZE(args[1]);
    return c.p == c.end && f->event_len == event_len &&
           memcmp(f->event, event, (size_t)event_len) == 0 && f->symbol_len == symbol_len &&
           memcmp(f->symbol, symbol, (size_t)symbol_len) == 0;
}

static PyObject *
parse_depth(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    Frame f;
    int ok = read_frame(args, nargs, "parse_depth", &f, "depthUpdate", 11);
    PyObject *result = NULL;
    if (ok < 0) {
        goto done;
    }
    if (!ok || !f.has_E || !f.has_U || !f.has_u || !f.has_b || !f.has_a) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    PyObject *bids = levels_tuple(&f.bids);
    PyObject *asks = bids == NULL ? NULL : levels_tuple(&f.asks);
    if (asks != NULL) {
        result = Py_BuildValue("(LLLLNN)", f.E, f.U, f.u, f.has_pu ? f.pu : -1LL, bids, asks);
    }
    else {
        Py_XDECREF(bids);
    }
done:
    levels_free(&f.bids);
    levels_free(&f.asks);
    return result;
}

static PyObject *
parse_trade(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    Frame f;
    int ok = read_frame(args, nargs, "parse_trade", &f, "trade", 5);
    PyObject *result = NULL;
    long long px, sz;
    if (ok < 0) {
        goto done;
    }
    if (!ok || !f.has_T || !f.has_t || !f.has_m || f.price == NULL || f.qty == NULL ||
        (f.status != NULL && !KEY_IS(f.status, f.status_len, "MARKET")) ||
        text_units(f.price, f.price_len, f.tick, &px) < 0 ||
        text_units(f.qty, f.qty_len, f.lot, &sz) < 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    result = Py_BuildValue("(LLLLO)", f.T, f.t, px, sz, f.m ? Py_True : Py_False);
done:
    levels_free(&f.bids);
    levels_free(&f.asks);
    return result;
}

/* Integer levels into a book side: what `Book.update` does for one side. */
static int
apply_int_side(PyObject *levels, PyObject *book, PyObject *heap, int negate)
{
    Py_ssize_t n = PyTuple_GET_SIZE(levels);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PyTuple_GET_ITEM(levels, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            PyErr_SetString(PyExc_ValueError, "a level must be a (price, size) pair");
            return -1;
        }
        if (write_level(book, heap, negate, PyTuple_GET_ITEM(pair, 0), PyTuple_GET_ITEM(pair, 1)) < 0) {
            return -1;
        }
    }
    return 0;
}

/*
 * heapq.heappop(heap) for a heap of ints, the popped entry dropped: the last entry moves to
 * the top and sinks below every smaller child.
 */
static int
heap_pop_int(PyObject *heap)
{
    Py_ssize_t n = PyList_GET_SIZE(heap);
    PyObject *last = Py_NewRef(PyList_GET_ITEM(heap, n - 1));
    if (PyList_SetSlice(heap, n - 1, n, NULL) < 0) {
        Py_DECREF(last);
        return -1;
    }
    n--;
    if (n == 0) {
        Py_DECREF(last);
        return 0;
    }
    PyObject **items = ((PyListObject *)heap)->ob_item;
    long long value = PyLong_AsLongLong(last);
    if (value == -1 && PyErr_Occurred()) {
        Py_DECREF(last);
        return -1;
    }
    PyObject *top = items[0];
    Py_ssize_t pos = 0;
    for (;;) {
        Py_ssize_t child = 2 * pos + 1;
        if (child >= n) {
            break;
        }
        long long child_value = PyLong_AsLongLong(items[child]);
        if (child + 1 < n) {
            long long right = PyLong_AsLongLong(items[child + 1]);
            if (right < child_value) {
                child++;
                child_value = right;
            }
        }
        if (PyErr_Occurred()) {
            Py_DECREF(last);
            return -1;
        }
        if (!(child_value < value)) {
            break;
        }
        items[pos] = items[child];
        pos = child;
    }
    items[pos] = last; /* the reference taken above moves into the list */
    Py_DECREF(top);
    return 0;
}

/*
 * What Book.finish_update does for one side: rebuild the heap from the dict when stale entries
 * outnumber live ones (a sorted list is a heap), drop stale entries from the top, and return
 * the side's best price (a new reference) or None.
 */
static PyObject *
trim_side(PyObject *book, PyObject *heap, int negate)
{
    if (PyList_GET_SIZE(heap) > 2 * PyDict_GET_SIZE(book) + 256) {
        PyObject *keys = PyDict_Keys(book);
        if (keys == NULL) {
            return NULL;
        }
        for (Py_ssize_t i = 0; negate && i < PyList_GET_SIZE(keys); i++) {
            PyObject *negated = PyNumber_Negative(PyList_GET_ITEM(keys, i));
            if (negated == NULL) {
                Py_DECREF(keys);
                return NULL;
            }
            PyList_SetItem(keys, i, negated);
        }
        int rc = PyList_Sort(keys);
        if (rc == 0) {
            rc = PyList_SetSlice(heap, 0, PyList_GET_SIZE(heap), keys);
        }
        Py_DECREF(keys);
        if (rc < 0) {
            return NULL;
        }
    }
    while (PyList_GET_SIZE(heap) > 0) {
        PyObject *top = PyList_GET_ITEM(heap, 0);
        PyObject *price = negate ? PyNumber_Negative(top) : Py_NewRef(top);
        if (price == NULL) {
            return NULL;
        }
        int live = PyDict_Contains(book, price);
        if (live != 0) {
            if (live < 0) {
                Py_DECREF(price);
                return NULL;
            }
            return price;
        }
        Py_DECREF(price);
        if (heap_pop_int(heap) < 0) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}

static PyObject *
apply_levels(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 6 || !PyTuple_Check(args[0]) || !PyTuple_Check(args[1]) ||
        !PyDict_CheckExact(args[2]) || !PyList_Check(args[3]) || !PyDict_CheckExact(args[4]) ||
        !PyList_Check(args[5])) {
        PyErr_SetString(PyExc_TypeError,
                        "apply_levels(bids: tuple, asks: tuple, bid_book: dict, bid_heap: list, "
                        "ask_book: dict, ask_heap: list)");
        return NULL;
    }
    if (apply_int_side(args[0], args[2], args[3], 1) < 0 ||
        apply_int_side(args[1], args[4], args[5], 0) < 0) {
        return NULL;
    }
    PyObject *best_bid = trim_side(args[2], args[3], 1);
    if (best_bid == NULL) {
        return NULL;
    }
    PyObject *best_ask = trim_side(args[4], args[5], 0);
    if (best_ask == NULL) {
        Py_DECREF(best_bid);
        return NULL;
    }
    PyObject *touch = PyTuple_New(2);
    if (touch == NULL) {
        Py_DECREF(best_bid);
        Py_DECREF(best_ask);
        return NULL;
    }
    PyTuple_SET_ITEM(touch, 0, best_bid);
    PyTuple_SET_ITEM(touch, 1, best_ask);
    return touch;
}

/* -- slotted instances -------------------------------------------------------------------- */

/*
 * SlotBuilder(cls, names)(*values): an instance of a slotted class (a frozen dataclass of the
 * core) with its slots set to `values`, in `names` order, without running `__init__`: the same
 * object the constructor makes, at a fraction of the cost of a frozen dataclass's
 * `object.__setattr__` per field. `names` must be every slot of `cls`, which must derive from
 * object directly and have no `__dict__`, so no field can be left unset.
 */
#define MAX_SLOTS 16

typedef struct {
    PyObject_HEAD
    PyTypeObject *cls;
    Py_ssize_t count;
    Py_ssize_t offsets[MAX_SLOTS];
    vectorcallfunc vectorcall;
} SlotBuilder;

static PyObject *
slot_builder_build(PyObject *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    SlotBuilder *builder = (SlotBuilder *)self;
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if ((kwnames != NULL && PyTuple_GET_SIZE(kwnames) > 0) || nargs != builder->count) {
        PyErr_Format(PyExc_TypeError, "%s builder takes exactly %zd positional values",
                     builder->cls->tp_name, builder->count);
        return NULL;
    }
    PyObject *obj = builder->cls->tp_alloc(builder->cls, 0);
    if (obj == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < nargs; i++) {
        PyObject **slot = (PyObject **)((char *)obj + builder->offsets[i]);
        *slot = Py_NewRef(args[i]);
    }
    return obj;
}

static PyObject *
slot_builder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    PyObject *cls_obj, *names;
    static char *keywords[] = {"cls", "names", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!:SlotBuilder", keywords, &cls_obj,
                                     &PyTuple_Type, &names)) {
        return NULL;
    }
    if (!PyType_Check(cls_obj)) {
        PyErr_SetString(PyExc_TypeError, "cls must be a class");
        return NULL;
    }
    PyTypeObject *cls = (PyTypeObject *)cls_obj;
    Py_ssize_t count = PyTuple_GET_SIZE(names);
    if (cls->tp_base != &PyBaseObject_Type || cls->tp_dictoffset != 0 || count > MAX_SLOTS) {
        PyErr_SetString(PyExc_TypeError,
                        "cls must derive from object alone, have __slots__ and no __dict__");
        return NULL;
    }
    Py_ssize_t members = 0;
    for (PyMemberDef *m = cls->tp_members; m != NULL && m->name != NULL; m++) {
        if (m->type != T_OBJECT_EX || (m->flags & READONLY)) {
            PyErr_Format(PyExc_TypeError, "slot %s is not a plain object slot", m->name);
            return NULL;
        }
        members++;
    }
    if (members != count) {
        PyErr_Format(PyExc_TypeError, "%s has %zd slots; %zd names given", cls->tp_name, members,
                     count);
        return NULL;
    }
    SlotBuilder *self = (SlotBuilder *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        const char *name = PyUnicode_AsUTF8(PyTuple_GET_ITEM(names, i));
        if (name == NULL) {
            Py_DECREF(self);
            return NULL;
        }
        Py_ssize_t offset = -1;
        for (PyMemberDef *m = cls->tp_members; m->name != NULL; m++) {
            if (strcmp(m->name, name) == 0) {
                offset = m->offset;
            }
        }
        for (Py_ssize_t j = 0; j < i && offset >= 0; j++) {
            if (self->offsets[j] == offset) {
                offset = -1; /* named twice */
            }
        }
        if (offset < 0) {
            PyErr_Format(PyExc_TypeError, "%s: %s is not a slot, or is named twice",
                         cls->tp_name, name);
            Py_DECREF(self);
            return NULL;
        }
        self->offsets[i] = offset;
    }
    self->cls = (PyTypeObject *)Py_NewRef(cls);
    self->count = count;
    self->vectorcall = slot_builder_build;
    return (PyObject *)self;
}

static void
slot_builder_dealloc(PyObject *self)
{
    Py_XDECREF(((SlotBuilder *)self)->cls);
    Py_TYPE(self)->tp_free(self);
}

static PyTypeObject SlotBuilderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "mm_daemon._levels.SlotBuilder",
    .tp_basicsize = sizeof(SlotBuilder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL,
    .tp_doc = "SlotBuilder(cls, names)(*values): a slotted instance without its __init__",
    .tp_new = slot_builder_new,
    .tp_dealloc = slot_builder_dealloc,
    .tp_call = PyVectorcall_Call,
    .tp_vectorcall_offset = offsetof(SlotBuilder, vectorcall),
};

static PyMethodDef levels_methods[] = {
    {"parse_depth", (PyCFunction)(void (*)(void))parse_depth, METH_FASTCALL,
     "parse_depth(raw, symbol, tick, lot) -> (E, U, u, pu, bids, asks) or None"},
    {"parse_trade", (PyCFunction)(void (*)(void))parse_trade, METH_FASTCALL,
     "parse_trade(raw, symbol, tick, lot) -> (T, t, price_ticks, size_lots, m) or None"},
    {"apply_levels", (PyCFunction)(void (*)(void))apply_levels, METH_FASTCALL,
     "apply_levels(bids, asks, bid_book, bid_heap, ask_book, ask_heap) -> (best bid, best ask)"},
    {"apply_side", (PyCFunction)(void (*)(void))apply_side, METH_FASTCALL,
     "apply_side(levels, book, heap, negate, tick, lot) -> tuple of (price_ticks, size_lots)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef levels_module = {
    PyModuleDef_HEAD_INIT,
    "_levels",
    "Binance depth levels applied to a book side (compiled hot path).",
    -1,
    levels_methods,
};

PyMODINIT_FUNC
PyInit__levels(void)
{
    if (PyType_Ready(&SlotBuilderType) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&levels_module);
    if (module == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, "SlotBuilder", (PyObject *)&SlotBuilderType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
