/* The SFU's native fan-out: one call per publisher packet renders, protects and sends the
 * packet for every consumer fed by the producer (see docs/sfu.md, "The native path").
 *
 * A Lane is one consumer's forwarding state: its prebuilt header, offsets, counters, NACK
 * history and route (libsrtp context, socket, address). sfu/lane.py holds the same state
 * and logic in Python (the pure-Python path); both must put identical bytes on the wire.
 *
 * Nothing links against libsrtp: sfu/native.py hands over the address of srtp_protect in
 * pylibsrtp's cffi module, and each lane gets its srtp_t as an address too.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define MAX_PLAINTEXT 1500
#define MAX_TRAILER (16 + 128) /* pylibsrtp's bound on what srtp_protect appends */
#define MAX_HEADER 64
#define BATCH 64 /* datagrams per sendmmsg */

typedef int (*protect_fn)(void *context, void *packet, int *length);
static protect_fn srtp_protect;

/* CPython's PySocketSockObject (Modules/socketmodule.h, unchanged 3.11-3.13): the lane reads
 * the descriptor per packet, so a socket closed under it reads -1 instead of a reused fd.
 * Lane.route checks the layout against fileno() before trusting it. */
typedef struct {
    PyObject_HEAD
    int sock_fd;
} SocketObject;

typedef struct {
    PyObject_HEAD
    /* route */
    void *context;      /* srtp_t, kept alive by session */
    PyObject *session;  /* the pylibsrtp Session owning context */
    PyObject *sock;     /* a socket.socket, or NULL */
    PyObject *sendto;   /* a callable taking (bytes, address) when there is no socket */
    PyObject *address;
    struct sockaddr_storage peer;
    socklen_t peer_length;
    /* rewriting */
    unsigned char header[MAX_HEADER];
    int header_length;
    int pt, ext_pos;
    unsigned int ext_word;
    int gate, seq_off, last_seq, pic_off, tl0_off;
    unsigned int ts_off;
    unsigned long long packets_sent, bytes_sent, packets_dropped;
    /* NACK history: the entries sent, by outbound sequence number & mask */
    PyObject **history;
    int mask;
} Lane;

static PyTypeObject LaneType;

/* One publisher packet, parsed once for every lane. */
typedef struct {
    PyObject *object;
    long seq, ts, marker, level;
    const unsigned char *payload;
    Py_ssize_t size;
    int has_picture;
    long at, bits, number, tl0_at;
} Entry;

static int parse_entry(PyObject *object, Entry *entry) {
    if (!PyTuple_Check(object) || PyTuple_GET_SIZE(object) != 7) {
        PyErr_SetString(PyExc_TypeError, "an entry is a 7-tuple");
        return -1;
    }
    PyObject *payload = PyTuple_GET_ITEM(object, 3);
    if (!PyBytes_Check(payload)) {
        PyErr_SetString(PyExc_TypeError, "an entry's payload is bytes");
        return -1;
    }
    entry->object = object;
    entry->seq = PyLong_AsLong(PyTuple_GET_ITEM(object, 0));
    entry->ts = PyLong_AsLong(PyTuple_GET_ITEM(object, 1));
    entry->marker = PyLong_AsLong(PyTuple_GET_ITEM(object, 2));
    entry->level = PyLong_AsLong(PyTuple_GET_ITEM(object, 5));
    entry->payload = (const unsigned char *)PyBytes_AS_STRING(payload);
    entry->size = PyBytes_GET_SIZE(payload);
    PyObject *picture = PyTuple_GET_ITEM(object, 6);
    entry->has_picture = picture != Py_None;
    if (entry->has_picture) {
        if (!PyTuple_Check(picture) || PyTuple_GET_SIZE(picture) != 4) {
            PyErr_SetString(PyExc_TypeError, "a picture is a 4-tuple");
            return -1;
        }
        entry->at = PyLong_AsLong(PyTuple_GET_ITEM(picture, 0));
        entry->bits = PyLong_AsLong(PyTuple_GET_ITEM(picture, 1));
        entry->number = PyLong_AsLong(PyTuple_GET_ITEM(picture, 2));
        entry->tl0_at = PyLong_AsLong(PyTuple_GET_ITEM(picture, 3));
    }
    return PyErr_Occurred() ? -1 : 0;
}

static void put16(unsigned char *at, unsigned int value) {
    at[0] = (unsigned char)(value >> 8);
    at[1] = (unsigned char)value;
}

static void put32(unsigned char *at, unsigned int value) {
    at[0] = (unsigned char)(value >> 24);
    at[1] = (unsigned char)(value >> 16);
    at[2] = (unsigned char)(value >> 8);
    at[3] = (unsigned char)value;
}

/* Keep the entry in the lane's history (as Lane.send does in Python). */
static void remember(Lane *lane, unsigned int out_seq, PyObject *entry) {
    PyObject **slot = &lane->history[out_seq & (unsigned int)lane->mask];
    PyObject *old = *slot;
    Py_INCREF(entry);
    *slot = entry;
    Py_XDECREF(old);
}

/* Render the lane's plaintext packet into buffer and protect it; the protected length, or -1
 * (too large, no context, libsrtp refused). Updates the history and last_seq. */
static int render(Lane *lane, const Entry *entry, unsigned char *buffer) {
    unsigned int out_seq = (unsigned int)(entry->seq + lane->seq_off) & 0xFFFF;
    remember(lane, out_seq, entry->object);
    lane->last_seq = (int)out_seq;
    int start = lane->header_length;
    Py_ssize_t end = start + entry->size;
    if (end > MAX_PLAINTEXT || lane->context == NULL)
        return -1;
    memcpy(buffer, lane->header, (size_t)start);
    buffer[1] = (unsigned char)(lane->pt | entry->marker);
    put16(buffer + 2, out_seq);
    put32(buffer + 4, ((unsigned int)entry->ts + lane->ts_off) & 0xFFFFFFFFu);
    if (entry->level >= 0 && lane->ext_pos) {
        if (lane->ext_word)
            put32(buffer + lane->ext_pos, lane->ext_word | (unsigned int)entry->level);
        else
            buffer[lane->ext_pos + 1] = (unsigned char)entry->level;
    }
    memcpy(buffer + start, entry->payload, (size_t)entry->size);
    if (entry->has_picture && (lane->pic_off || lane->tl0_off)) {
        unsigned char *body = buffer + start;
        if (entry->bits == 15) {
            unsigned int shifted = (unsigned int)(entry->number + lane->pic_off) & 0x7FFF;
            body[entry->at] = (unsigned char)(0x80 | shifted >> 8);
            body[entry->at + 1] = (unsigned char)shifted;
        } else {
            body[entry->at] = (unsigned char)((entry->number + lane->pic_off) & 0x7F);
        }
        if (entry->tl0_at)
            body[entry->tl0_at] = (unsigned char)((body[entry->tl0_at] + lane->tl0_off) & 0xFF);
    }
    int length = (int)end;
    if (srtp_protect(lane->context, buffer, &length) != 0)
        return -1;
    return length;
}

static int lane_fd(Lane *lane) {
    return lane->sock == NULL ? -1 : ((SocketObject *)lane->sock)->sock_fd;
}

/* Send one protected datagram through the lane's Python sendto (no socket: tests' routes).
 * 1 if it went; 0 if it did not (OSError); -1 on another exception. */
static int send_through_python(Lane *lane, const unsigned char *data, int length) {
    if (lane->sendto == NULL)
        return 0;
    PyObject *packet = PyBytes_FromStringAndSize((const char *)data, length);
    if (packet == NULL)
        return -1;
    PyObject *result = PyObject_CallFunctionObjArgs(lane->sendto, packet, lane->address, NULL);
    Py_DECREF(packet);
    if (result != NULL) {
        Py_DECREF(result);
        return 1;
    }
    if (PyErr_ExceptionMatches(PyExc_OSError)) {
        PyErr_Clear();
        return 0;
    }
    return -1;
}

static void count(Lane *lane, int sent, Py_ssize_t size) {
    if (sent) {
        lane->packets_sent++;
        lane->bytes_sent += (unsigned long long)size;
    } else {
        lane->packets_dropped++;
    }
}

/* --- the batch: datagrams waiting for one sendmmsg on one socket ---------------------- */

typedef struct {
    int fd;
    unsigned int count;
    struct mmsghdr messages[BATCH];
    struct iovec vectors[BATCH];
    Lane *lanes[BATCH];
    Py_ssize_t sizes[BATCH]; /* payload bytes, for bytes_sent */
    unsigned char buffers[BATCH][MAX_PLAINTEXT + MAX_TRAILER];
} Batch;

static Batch batch;
static unsigned char single[MAX_PLAINTEXT + MAX_TRAILER];

/* Send what the batch holds. A datagram the kernel refuses (EAGAIN: the socket buffer is
 * full) is dropped and the rest still go, as the Python path's sendto per packet does. */
static void flush(void) {
    unsigned int done = 0;
    while (done < batch.count) {
        int sent = sendmmsg(batch.fd, batch.messages + done, batch.count - done, MSG_DONTWAIT);
        if (sent < 0) {
            if (errno == EINTR)
                continue;
            count(batch.lanes[done], 0, 0);
            done++;
            continue;
        }
        for (int i = 0; i < sent; i++, done++)
            count(batch.lanes[done], 1, batch.sizes[done]);
    }
    batch.count = 0;
}

/* Forward the entry to one lane through the batch (or its Python sendto). 0, or -1 on error. */
static int enqueue(Lane *lane, const Entry *entry) {
    int fd = lane_fd(lane);
    if (fd < 0) {
        int length = render(lane, entry, single);
        int sent = length < 0 ? 0 : send_through_python(lane, single, length);
        if (sent < 0)
            return -1;
        count(lane, sent, entry->size);
        return 0;
    }
    if (batch.count && (batch.fd != fd || batch.count == BATCH))
        flush();
    unsigned int index = batch.count;
    unsigned char *buffer = batch.buffers[index];
    int length = render(lane, entry, buffer);
    if (length < 0) {
        lane->packets_dropped++;
        return 0;
    }
    batch.fd = fd;
    batch.vectors[index].iov_base = buffer;
    batch.vectors[index].iov_len = (size_t)length;
    struct msghdr *header = &batch.messages[index].msg_hdr;
    memset(header, 0, sizeof(*header));
    header->msg_name = &lane->peer;
    header->msg_namelen = lane->peer_length;
    header->msg_iov = &batch.vectors[index];
    header->msg_iovlen = 1;
    batch.lanes[index] = lane;
    batch.sizes[index] = entry->size;
    batch.count++;
    return 0;
}

/* fan_out(entry, lanes, forwarders): a lane whose gate is closed, or that is no native lane,
 * gets forwarders[i](entry) instead (the consumer's Python forward: keyframe gate). */
static PyObject *fan_out(PyObject *module, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3 || !PyTuple_Check(args[1]) || !PyTuple_Check(args[2]) ||
        PyTuple_GET_SIZE(args[1]) != PyTuple_GET_SIZE(args[2])) {
        PyErr_SetString(PyExc_TypeError, "fan_out(entry, lanes, forwarders): two equal tuples");
        return NULL;
    }
    Entry entry;
    if (parse_entry(args[0], &entry) < 0)
        return NULL;
    PyObject *lanes = args[1], *forwarders = args[2];
    Py_ssize_t size = PyTuple_GET_SIZE(lanes);
    for (Py_ssize_t i = 0; i < size; i++) {
        PyObject *object = PyTuple_GET_ITEM(lanes, i);
        /* A lane whose __init__ did not run has no history: its consumer forwards. */
        if (PyObject_TypeCheck(object, &LaneType) && ((Lane *)object)->history != NULL &&
            !((Lane *)object)->gate) {
            if (enqueue((Lane *)object, &entry) < 0)
                goto failed;
            continue;
        }
        PyObject *result = PyObject_CallOneArg(PyTuple_GET_ITEM(forwarders, i), entry.object);
        if (result == NULL)
            goto failed;
        Py_DECREF(result);
    }
    flush();
    Py_RETURN_NONE;
failed:
    flush();
    return NULL;
}

static PyObject *set_protect(PyObject *module, PyObject *address) {
    void *pointer = PyLong_AsVoidPtr(address);
    if (pointer == NULL && PyErr_Occurred())
        return NULL;
    srtp_protect = (protect_fn)pointer;
    Py_RETURN_NONE;
}

/* --- Lane methods ------------------------------------------------------------------------ */

static int Lane_init(Lane *self, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"history", NULL};
    int size;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "i", names, &size))
        return -1;
    if (size < 1 || (size & (size - 1))) {
        PyErr_SetString(PyExc_ValueError, "history is a power of two");
        return -1;
    }
    if (self->history != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "a lane is initialised once");
        return -1;
    }
    self->history = PyMem_Calloc((size_t)size, sizeof(PyObject *));
    if (self->history == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    self->mask = size - 1;
    self->header_length = 12;
    return 0;
}

static void forget_all(Lane *self) {
    if (self->history == NULL)
        return;
    for (int i = 0; i <= self->mask; i++)
        Py_CLEAR(self->history[i]);
}

static void Lane_dealloc(Lane *self) {
    forget_all(self);
    PyMem_Free(self->history);
    Py_XDECREF(self->session);
    Py_XDECREF(self->sock);
    Py_XDECREF(self->sendto);
    Py_XDECREF(self->address);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int parse_peer(Lane *self, PyObject *address) {
    const char *host;
    int port;
    unsigned int flowinfo = 0, scope = 0;
    memset(&self->peer, 0, sizeof(self->peer));
    if (!PyArg_ParseTuple(address, "si|II", &host, &port, &flowinfo, &scope))
        return -1;
    struct sockaddr_in *v4 = (struct sockaddr_in *)&self->peer;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&self->peer;
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        self->peer_length = sizeof(*v4);
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        v6->sin6_flowinfo = htonl(flowinfo);
        v6->sin6_scope_id = scope;
        self->peer_length = sizeof(*v6);
    } else {
        PyErr_Format(PyExc_ValueError, "not an IP address: %s", host);
        return -1;
    }
    return 0;
}

/* bind_route(session, context address, socket or None, sendto or None, address) */
static PyObject *Lane_bind_route(Lane *self, PyObject *args) {
    PyObject *session, *context, *sock, *sendto, *address;
    if (!PyArg_ParseTuple(args, "OOOOO", &session, &context, &sock, &sendto, &address))
        return NULL;
    void *pointer = context == Py_None ? NULL : PyLong_AsVoidPtr(context);
    if (pointer == NULL && PyErr_Occurred())
        return NULL;
    if (sock != Py_None) {
        PyObject *fileno = PyObject_CallMethod(sock, "fileno", NULL);
        if (fileno == NULL)
            return NULL;
        long fd = PyLong_AsLong(fileno);
        Py_DECREF(fileno);
        if (fd != ((SocketObject *)sock)->sock_fd) {
            PyErr_SetString(PyExc_RuntimeError, "socket layout differs from CPython 3.11's");
            return NULL;
        }
        if (parse_peer(self, address) < 0)
            return NULL;
    }
    self->context = pointer;
    Py_INCREF(session);
    Py_XSETREF(self->session, session);
    Py_XSETREF(self->sock, sock == Py_None ? NULL : Py_NewRef(sock));
    Py_XSETREF(self->sendto, sendto == Py_None ? NULL : Py_NewRef(sendto));
    Py_INCREF(address);
    Py_XSETREF(self->address, address);
    Py_RETURN_NONE;
}

static PyObject *Lane_set_header(Lane *self, PyObject *header) {
    if (!PyBytes_Check(header) || PyBytes_GET_SIZE(header) < 12 ||
        PyBytes_GET_SIZE(header) > MAX_HEADER) {
        PyErr_SetString(PyExc_ValueError, "a header is 12 to 64 bytes");
        return NULL;
    }
    self->header_length = (int)PyBytes_GET_SIZE(header);
    memcpy(self->header, PyBytes_AS_STRING(header), (size_t)self->header_length);
    Py_RETURN_NONE;
}

static PyObject *Lane_get_header(Lane *self, void *closure) {
    return PyBytes_FromStringAndSize((const char *)self->header, self->header_length);
}

/* send(entry): forward one entry (the consumer's gate is open). */
static int initialised(Lane *self) {
    if (self->history != NULL)
        return 1;
    PyErr_SetString(PyExc_RuntimeError, "Lane.__init__ was not called");
    return 0;
}

static PyObject *Lane_send(Lane *self, PyObject *object) {
    Entry entry;
    if (!initialised(self))
        return NULL;
    if (parse_entry(object, &entry) < 0)
        return NULL;
    int failed = enqueue(self, &entry);
    flush();
    if (failed)
        return NULL;
    Py_RETURN_NONE;
}

/* send_plain(packet) -> bool: protect and send a whole plaintext packet (retransmissions,
 * padding); not counted as media. */
static PyObject *Lane_send_plain(Lane *self, PyObject *packet) {
    if (!PyBytes_Check(packet)) {
        PyErr_SetString(PyExc_TypeError, "a packet is bytes");
        return NULL;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(packet);
    if (size > MAX_PLAINTEXT || self->context == NULL)
        Py_RETURN_FALSE;
    memcpy(single, PyBytes_AS_STRING(packet), (size_t)size);
    int length = (int)size;
    if (srtp_protect(self->context, single, &length) != 0)
        Py_RETURN_FALSE;
    int fd = lane_fd(self);
    int sent;
    if (fd < 0) {
        sent = send_through_python(self, single, length);
        if (sent < 0)
            return NULL;
    } else {
        sent = sendto(fd, single, (size_t)length, MSG_DONTWAIT, (struct sockaddr *)&self->peer,
                      self->peer_length) == length;
    }
    return PyBool_FromLong(sent);
}

static PyObject *Lane_entry(Lane *self, PyObject *seq) {
    if (!initialised(self))
        return NULL;
    long value = PyLong_AsLong(seq);
    if (value == -1 && PyErr_Occurred())
        return NULL;
    PyObject *entry = self->history[(unsigned long)value & (unsigned int)self->mask];
    return Py_NewRef(entry == NULL ? Py_None : entry);
}

static PyObject *Lane_remember(Lane *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "remember(out_seq, entry)");
        return NULL;
    }
    if (!initialised(self))
        return NULL;
    long value = PyLong_AsLong(args[0]);
    if (value == -1 && PyErr_Occurred())
        return NULL;
    remember(self, (unsigned int)value, args[1]);
    Py_RETURN_NONE;
}

/* close(): empty the history and drop what comes late (the libsrtp context stays valid). */
static PyObject *Lane_close(Lane *self, PyObject *unused) {
    forget_all(self);
    Py_CLEAR(self->sock);
    Py_CLEAR(self->sendto);
    Py_RETURN_NONE;
}

static PyMethodDef Lane_methods[] = {
    {"bind_route", (PyCFunction)Lane_bind_route, METH_VARARGS, "Set the route (see sfu/lane.py)."},
    {"set_header", (PyCFunction)Lane_set_header, METH_O, "Set the prebuilt header."},
    {"send", (PyCFunction)Lane_send, METH_O, "Forward one entry."},
    {"send_plain", (PyCFunction)Lane_send_plain, METH_O, "Protect and send a plaintext packet."},
    {"entry", (PyCFunction)Lane_entry, METH_O, "The history entry at an outbound seq's slot."},
    {"remember", (PyCFunction)(void (*)(void))Lane_remember, METH_FASTCALL, "Keep an entry."},
    {"close", (PyCFunction)Lane_close, METH_NOARGS, "Empty the history, drop from now on."},
    {NULL},
};

static PyMemberDef Lane_members[] = {
    {"gate", T_BOOL, offsetof(Lane, gate), 0, NULL},
    {"pt", T_INT, offsetof(Lane, pt), 0, NULL},
    {"ext_pos", T_INT, offsetof(Lane, ext_pos), 0, NULL},
    {"ext_word", T_UINT, offsetof(Lane, ext_word), 0, NULL},
    {"seq_off", T_INT, offsetof(Lane, seq_off), 0, NULL},
    {"ts_off", T_UINT, offsetof(Lane, ts_off), 0, NULL},
    {"last_seq", T_INT, offsetof(Lane, last_seq), 0, NULL},
    {"pic_off", T_INT, offsetof(Lane, pic_off), 0, NULL},
    {"tl0_off", T_INT, offsetof(Lane, tl0_off), 0, NULL},
    {"packets_sent", T_ULONGLONG, offsetof(Lane, packets_sent), 0, NULL},
    {"bytes_sent", T_ULONGLONG, offsetof(Lane, bytes_sent), 0, NULL},
    {"packets_dropped", T_ULONGLONG, offsetof(Lane, packets_dropped), 0, NULL},
    {NULL},
};

static PyGetSetDef Lane_getset[] = {
    {"header", (getter)Lane_get_header, NULL, NULL, NULL},
    {NULL},
};

static PyTypeObject LaneType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sfu._fanout.Lane",
    .tp_doc = "One consumer's forwarding state and route (the native twin of sfu.lane.Lane).",
    .tp_basicsize = sizeof(Lane),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Lane_init,
    .tp_dealloc = (destructor)Lane_dealloc,
    .tp_methods = Lane_methods,
    .tp_members = Lane_members,
    .tp_getset = Lane_getset,
};

static PyMethodDef module_methods[] = {
    {"fan_out", (PyCFunction)(void (*)(void))fan_out, METH_FASTCALL,
     "fan_out(entry, lanes, forwarders): forward one entry to every lane."},
    {"set_protect", set_protect, METH_O, "set_protect(address of srtp_protect)."},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_fanout", "The SFU's native fan-out (docs/sfu.md).", -1,
    module_methods,
};

PyMODINIT_FUNC PyInit__fanout(void) {
    if (PyType_Ready(&LaneType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "Lane", (PyObject *)&LaneType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
