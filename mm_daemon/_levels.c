/*
 * Binance depth levels into a book side, compiled: the per-level loop of the market-data hot
 * path (mm_daemon.venues.binance_native), which in Python costs about half a microsecond a
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

static PyObject *heappush_fn = NULL;

static const double POW10[19] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9,
    1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18,
};

/*
 * Plain decimal text ("59996.66000000", "0.250", "12") as digits and a decimal count, for up
 * to 15 significant digits (exact in a double). 0 on success; -1 for anything else (signs,
 * exponents, spaces, longer numbers), which the caller reads with Python's own float().
 */
static int
read_plain_decimal(const char *text, Py_ssize_t size, long long *digits, int *decimals)
{
    long long value = 0;
    int count = 0;
    int after_point = -1;
    for (Py_ssize_t i = 0; i < size; i++) {
        char c = text[i];
        if (c >= '0' && c <= '9') {
            if (value == 0 && c == '0') {
                if (after_point >= 0) {
                    after_point++;
                }
                continue;
            }
            if (++count > 15) {
                return -1;
            }
            value = value * 10 + (c - '0');
            if (after_point >= 0) {
                after_point++;
            }
        }
        else if (c == '.' && after_point < 0) {
            after_point = 0;
        }
        else {
            return -1;
        }
    }
    if (size == 0 || (after_point == 0 && size == 1) || after_point > 18) {
        return -1;
    }
    *digits = value;
    *decimals = after_point < 0 ? 0 : after_point;
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
        int live = PyObject_IsTrue(sz);
        int err = 0;
        if (live) {
            int present = PyDict_Contains(book, px);
            if (present < 0) {
                err = -1;
            }
            else if (!present) {
                PyObject *key = negate ? PyNumber_Negative(px) : Py_NewRef(px);
                if (key == NULL) {
                    err = -1;
                }
                else {
                    PyObject *res = PyObject_CallFunctionObjArgs(heappush_fn, heap, key, NULL);
                    Py_DECREF(key);
                    if (res == NULL) {
                        err = -1;
                    }
                    Py_XDECREF(res);
                }
            }
            if (!err && PyDict_SetItem(book, px, sz) < 0) {
                err = -1;
            }
        }
        else if (PyDict_DelItem(book, px) < 0) {
            if (PyErr_ExceptionMatches(PyExc_KeyError)) {
                PyErr_Clear();
            }
            else {
                err = -1;
            }
        }
        if (err) {
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

static PyMethodDef levels_methods[] = {
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
    PyObject *heapq = PyImport_ImportModule("heapq");
    if (heapq == NULL) {
        return NULL;
    }
    heappush_fn = PyObject_GetAttrString(heapq, "heappush");
    Py_DECREF(heapq);
    if (heappush_fn == NULL) {
        return NULL;
    }
    return PyModule_Create(&levels_module);
}
