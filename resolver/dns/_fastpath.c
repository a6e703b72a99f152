/*
 * resolver.dns._fastpath: batched UDP I/O and a table of answers already rendered.
 *
 * The compiled twin of resolver/dns/fastpath.py (`PyFastPath`), which is the reference: the same
 * API and the same results, tested against each other. Why it exists: per query, the kernel's
 * work (~9 us on our VMs) is most of what a resolver costs; a Python `sendto` per answer and the
 * interpreter's per-packet work doubled or quadrupled it. Here one `recvmmsg` reads a batch of
 * queries, every query whose exact bytes (ID and question-name case aside) were answered before
 * for a client of the same class is answered from the stored bytes, and one `sendmmsg` sends
 * those answers. Everything else goes back to Python, which decides and may `put` its answer.
 *
 * What Python stores and for how long (policy minute, cache second, reloads) is decided in
 * resolver/dns/fastanswers.py; this file only keeps the promise "valid until".
 *
 * Behind a load balancer (`proxy_protocol_from`, given here by `set_balancers`) every datagram
 * from a balancer starts with a PROXY v2 header naming the client (resolver/dns/proxyproto.py).
 * One that resolver.dns.proxygate would accept (a PROXY command, IPv4 or IPv6 over UDP or TCP,
 * addresses and TLVs filling the header exactly) is looked up as the query after the header
 * from the client it names, and a hit goes back to the balancer as plain DNS, as the gate's
 * path answers. Anything the gate might refuse or read otherwise (LOCAL, malformed, a header
 * from anyone else, a balancer's datagram without one) goes to Python unchanged.
 *
 * Both tables have a fixed number of slots (open addressing, linear probing, deletion by
 * backward shift) and evict with CLOCK (a hit sets a referenced bit; the hand skips such an
 * entry once) when full: memory never grows with traffic. A doorkeeper (`admit`: 64-bit
 * fingerprints in buckets of four, the oldest replaced) tells Python whether a query was offered
 * before, so one-off queries never take a slot. Hashes are seeded per process.
 * The GIL is held throughout: the socket is non-blocking, and no other thread may free an
 * answer while a batch points at it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#define RECV_SIZE 65535  /* the largest UDP payload: nothing is ever cut short */
#define HEADER 12
#define MIN_QUERY 17     /* header, root name, type and class */
#define MAX_KEY 512      /* key = the query from byte 2; longer ones are never stored */
#define MAX_ANSWER 4096  /* stored answers are UDP answers: at most 1232 bytes in practice */
#define MAX_NAME 255
#define MAX_BATCH 1024   /* UIO_MAXIOV: the most recvmmsg takes in one call */
#define MAX_STATS (1 << 20)
#define MAX_KLASS 65535
#define MAX_TTLS 128     /* TTL fields aged per answer at most (a 1232-byte answer has fewer) */
#define PROXY_FIXED 16   /* PROXY v2: signature, version and command, family, length */
#define PROXY_SIGNATURE "\r\n\r\n\0\r\nQUIT\n"
#define PROXY_SIGNATURE_LEN 12
#define MAX_BALANCERS 4096
#define SEEN_WAYS 4      /* the doorkeeper: buckets of 4 fingerprints, the oldest one replaced */
#define SEEN_BUCKETS (1 << 16) /* 262,144 queries remembered at most, in 2 MiB */
#define SENDERS 256      /* recent senders' address tuples, handed out again (direct-mapped) */
#define SERVE_ROUNDS 4   /* batches of only repeated answers one `serve` call reads at most */

static const unsigned char V4_MAPPED[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

/* One stored answer: key bytes, answer bytes and TTL offsets follow the fields. */
typedef struct {
    double valid_until;    /* CLOCK_MONOTONIC seconds; served while now < valid_until */
    uint64_t hash;
    int64_t second;        /* the whole second (monotonic) the answer's TTLs are for */
    uint32_t stats_id;
    uint16_t klass;
    uint16_t key_len;
    uint16_t answer_len;
    uint16_t name_len;     /* question name at answer[12:12 + name_len]: patched per query */
    uint16_t ttl_count;    /* TTL fields counted down by the seconds since `second` */
    uint8_t referenced;
    unsigned char bytes[]; /* key_len key bytes, answer_len answer bytes, ttl_count uint16 offsets */
} Answer;

/* One client address, its class (profile number + 1; 0: never answered here) and its credit:
 * the answers it may still get here before its next query goes to Python. Rate limits stay in
 * Python (resolver.dns.ratelimit): it grants a client a credit charged to its buckets in
 * advance and is refunded what was not used when it grants the next one (`set_client`). */
#define UNLIMITED UINT32_MAX /* credit of a client no rate limit applies to */
typedef struct {
    uint8_t len;           /* 0: empty slot; 4 or 16: address bytes in use */
    uint8_t referenced;
    uint16_t klass;
    uint32_t hash;
    uint32_t credit;       /* answers left, or UNLIMITED */
    unsigned char addr[16];
} Client;

/* A recent sender's address as recvmmsg wrote it, and the (host, port) tuple made for it: a
 * client's next query gets the same tuple, so the handler's per-client dicts find its host
 * string with its hash already computed, and no inet_ntop or string is made again. */
typedef struct {
    uint8_t len;           /* 0: empty; else the sockaddr's length */
    unsigned char sa[sizeof(struct sockaddr_in6)];
    PyObject *tuple;       /* strong reference */
} Sender;

/* A trusted load balancer's network (`proxy_protocol_from`): address bytes, host bits zero. */
typedef struct {
    uint8_t len;           /* 4 or 16 */
    uint8_t prefix;        /* bits */
    unsigned char addr[16];
} Balancer;

typedef struct {
    PyObject_HEAD
    unsigned batch;
    /* load balancers whose PROXY v2 headers are read (few: scanned in turn) */
    Balancer *balancers;
    size_t balancer_count;
    /* answers */
    Answer **answers;
    size_t answer_mask, answer_count, answer_capacity, answer_hand;
    /* clients */
    Client *clients;
    size_t client_mask, client_count, client_capacity, client_hand;
    /* counters, harvested by Python */
    uint64_t *hits;
    size_t hits_len;
    double hit_seconds;
    uint64_t send_errors;
    uint64_t seed;
    /* the doorkeeper: fingerprints of queries offered once (0: empty) */
    uint64_t *seen;
    /* batch buffers */
    unsigned char *rbufs;
    struct mmsghdr *rmsgs, *smsgs;
    struct iovec *riovs, *siovs;
    struct sockaddr_storage *raddrs, *saddrs;
    unsigned char *abufs;  /* per send slot: an answer whose TTLs had to be aged */
    Sender senders[SENDERS];
} FastPath;

/* ---- hashing ------------------------------------------------------------------------------ */

static inline uint64_t mix64(uint64_t h) {
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

static uint64_t hash_bytes(uint64_t seed, const unsigned char *p, size_t n) {
    uint64_t h = seed ^ (n * 0x9e3779b97f4a7c15ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ mix64(w)) * 0x100000001b3ULL;
        h = (h << 27) | (h >> 37);
        p += 8;
        n -= 8;
    }
    uint64_t tail = 0;
    memcpy(&tail, p, n);
    return mix64(h ^ mix64(tail ^ 0x5bd1e995ULL));
}

static inline size_t table_slots(size_t capacity) {
    size_t slots = 16;
    while (slots < capacity * 2) slots <<= 1; /* at most half full */
    return slots;
}

/* Offset just past the (uncompressed) question name of a packet, or -1. */
static Py_ssize_t name_end(const unsigned char *p, Py_ssize_t len) {
    Py_ssize_t pos = HEADER;
    for (;;) {
        if (pos >= len) return -1;
        unsigned l = p[pos];
        if (l == 0) break;
        if (l & 0xC0) return -1;
        pos += l + 1;
        if (pos - HEADER >= MAX_NAME) return -1;
    }
    pos += 1;
    return pos + 4 <= len ? pos : -1;
}

/* The end of the question name of a query the table can key (its length within bounds, its
 * name uncompressed), or -1. */
static Py_ssize_t key_end(const unsigned char *p, Py_ssize_t len) {
    if (len < MIN_QUERY || len - 2 > MAX_KEY) return -1;
    return name_end(p, len);
}

/* The table key of a query: its bytes from 2 on, the question name (ending at `end`) in lower
 * case; `len` - 2 bytes written to `key`. */
static void make_key(const unsigned char *packet, Py_ssize_t len, Py_ssize_t end,
                     unsigned char *key) {
    memcpy(key, packet + 2, (size_t)len - 2);
    for (Py_ssize_t k = HEADER - 2; k < end - 2; k++)
        if (key[k] >= 'A' && key[k] <= 'Z') key[k] |= 0x20;
}

/* ---- the answer table --------------------------------------------------------------------- */

/* The hash a key is filed under for clients of `klass` (the doorkeeper's fingerprint too). */
static inline uint64_t key_hash(const FastPath *self, uint16_t klass, const unsigned char *key,
                                size_t len) {
    return hash_bytes(self->seed ^ klass, key, len);
}

static size_t answer_find(FastPath *self, uint16_t klass, const unsigned char *key, size_t len,
                          uint64_t hash) {
    size_t i = hash & self->answer_mask;
    for (;;) {
        Answer *a = self->answers[i];
        if (a == NULL) return SIZE_MAX;
        if (a->hash == hash && a->klass == klass && a->key_len == len &&
            memcmp(a->bytes, key, len) == 0)
            return i;
        i = (i + 1) & self->answer_mask;
    }
}

/* Free slot i and shift later entries of its probe run back (no tombstones). */
static void answer_remove(FastPath *self, size_t i) {
    size_t mask = self->answer_mask;
    PyMem_RawFree(self->answers[i]);
    self->answers[i] = NULL;
    self->answer_count--;
    for (size_t j = (i + 1) & mask; self->answers[j] != NULL; j = (j + 1) & mask) {
        size_t home = self->answers[j]->hash & mask;
        /* the entry at j may move to i unless its home lies cyclically in (i, j] */
        int stays = (i < j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            self->answers[i] = self->answers[j];
            self->answers[j] = NULL;
            i = j;
        }
    }
}

static void answer_evict(FastPath *self) {
    for (;;) {
        self->answer_hand = (self->answer_hand + 1) & self->answer_mask;
        Answer *a = self->answers[self->answer_hand];
        if (a == NULL) continue;
        if (a->referenced) {
            a->referenced = 0;
            continue;
        }
        answer_remove(self, self->answer_hand);
        return;
    }
}

/* The doorkeeper's bucket for a (class, key) hash. */
static inline uint64_t *seen_bucket(FastPath *self, uint64_t h) {
    return self->seen + ((h >> 32) & (SEEN_BUCKETS - 1)) * SEEN_WAYS;
}

/* ---- the client table --------------------------------------------------------------------- */

static uint32_t client_hash(FastPath *self, const unsigned char *addr, size_t len) {
    return (uint32_t)hash_bytes(self->seed ^ 0xc1, addr, len);
}

static Client *client_find(FastPath *self, const unsigned char *addr, size_t len, uint32_t h) {
    size_t i = h & self->client_mask;
    for (;;) {
        Client *c = &self->clients[i];
        if (c->len == 0) return NULL;
        if (c->hash == h && c->len == len && memcmp(c->addr, addr, len) == 0) return c;
        i = (i + 1) & self->client_mask;
    }
}

static void client_remove(FastPath *self, size_t i) {
    size_t mask = self->client_mask;
    Client *t = self->clients;
    t[i].len = 0;
    self->client_count--;
    for (size_t j = (i + 1) & mask; t[j].len != 0; j = (j + 1) & mask) {
        size_t home = t[j].hash & mask;
        int stays = (i < j) ? (home > i && home <= j) : (home > i || home <= j);
        if (!stays) {
            t[i] = t[j];
            t[j].len = 0;
            i = j;
        }
    }
}

static void client_evict(FastPath *self) {
    for (;;) {
        self->client_hand = (self->client_hand + 1) & self->client_mask;
        Client *c = &self->clients[self->client_hand];
        if (c->len == 0) continue;
        if (c->referenced) {
            c->referenced = 0;
            continue;
        }
        client_remove(self, self->client_hand);
        return;
    }
}

/* The address bytes of a received sockaddr (4 or 16), or NULL. */
static const unsigned char *sockaddr_bytes(const struct sockaddr_storage *sa, size_t *len) {
    if (sa->ss_family == AF_INET) {
        *len = 4;
        return (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
    }
    if (sa->ss_family == AF_INET6) {
        *len = 16;
        return (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
    }
    return NULL;
}

/* ---- PROXY v2 from load balancers --------------------------------------------------------- */

/* Whether an address (4 or 16 bytes) is in one of the balancers' networks. An IPv4-mapped
 * IPv6 address is matched as the IPv4 one, as resolver.dns.acl reads it. */
static int is_balancer(const FastPath *self, const unsigned char *addr, size_t len) {
    if (len == 16 && memcmp(addr, V4_MAPPED, sizeof V4_MAPPED) == 0) {
        addr += sizeof V4_MAPPED;
        len = 4;
    }
    for (size_t i = 0; i < self->balancer_count; i++) {
        const Balancer *b = &self->balancers[i];
        if (b->len != len) continue;
        unsigned whole = b->prefix / 8, bits = b->prefix % 8;
        if (memcmp(addr, b->addr, whole) != 0) continue;
        if (bits && ((addr[whole] ^ b->addr[whole]) & (0xFF00 >> bits) & 0xFF)) continue;
        return 1;
    }
    return 0;
}

/* For a datagram starting with the signature: the offset of the query after a PROXY v2 header
 * resolver.dns.proxyproto.parse accepts with a client address (`client`, 4 or 16 bytes; an
 * IPv4-mapped one as IPv4), or -1 (LOCAL, malformed: Python's to count). */
static Py_ssize_t proxy_client(const unsigned char *p, Py_ssize_t len,
                               const unsigned char **client, size_t *client_len) {
    if (len < PROXY_FIXED || p[12] != 0x21) return -1; /* version 2, PROXY */
    unsigned family = p[13] >> 4, protocol = p[13] & 0x0F;
    if (protocol != 1 && protocol != 2) return -1; /* TCP or UDP */
    size_t size = family == 1 ? 4 : family == 2 ? 16 : 0;
    if (size == 0) return -1;
    Py_ssize_t end = PROXY_FIXED + ((Py_ssize_t)p[14] << 8 | p[15]);
    Py_ssize_t pos = PROXY_FIXED + 2 * (Py_ssize_t)size + 4; /* addresses and ports */
    if (end > len || pos > end) return -1;
    while (pos < end) { /* TLVs must fill the rest of the header exactly */
        if (pos + 3 > end) return -1;
        pos += 3 + ((Py_ssize_t)p[pos + 1] << 8 | p[pos + 2]);
    }
    if (pos != end) return -1;
    *client = p + PROXY_FIXED;
    *client_len = size;
    if (size == 16 && memcmp(*client, V4_MAPPED, sizeof V4_MAPPED) == 0) {
        *client += sizeof V4_MAPPED;
        *client_len = 4;
    }
    return end;
}

/* Where datagram i's DNS query starts and whose it is: the source's own query, or the one
 * after a PROXY v2 header from a balancer; -1 when Python must see the datagram (the gate
 * refuses or counts it). */
static Py_ssize_t query_of(const FastPath *self, unsigned i, const unsigned char **client,
                           size_t *client_len) {
    const unsigned char *buf = self->rbufs + (size_t)i * RECV_SIZE;
    Py_ssize_t len = self->rmsgs[i].msg_len;
    *client = sockaddr_bytes(&self->raddrs[i], client_len);
    if (*client == NULL) return -1;
    int headed = len >= PROXY_SIGNATURE_LEN && buf[0] == '\r' &&
                 memcmp(buf, PROXY_SIGNATURE, PROXY_SIGNATURE_LEN) == 0;
    if (self->balancer_count == 0 || !is_balancer(self, *client, *client_len))
        return headed ? -1 : 0;
    return headed ? proxy_client(buf, len, client, client_len) : -1;
}

/* ---- Python address tuples ---------------------------------------------------------------- */

/* (host, port) or (host, port, flowinfo, scope_id), as socket.recvfrom gives them. */
static PyObject *address_tuple(const struct sockaddr_storage *sa, socklen_t salen) {
    char host[NI_MAXHOST];
    if (sa->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if (inet_ntop(AF_INET, &in->sin_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(si)", host, ntohs(in->sin_port));
    }
    if (sa->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (in6->sin6_scope_id == 0) {
            if (inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host) == NULL)
                return PyErr_SetFromErrno(PyExc_OSError);
        } else if (getnameinfo((const struct sockaddr *)sa, salen, host, sizeof host, NULL, 0,
                               NI_NUMERICHOST) != 0) {
            PyErr_SetString(PyExc_OSError, "getnameinfo failed");
            return NULL;
        }
        return Py_BuildValue("(siII)", host, ntohs(in6->sin6_port),
                             (unsigned)ntohl(in6->sin6_flowinfo), (unsigned)in6->sin6_scope_id);
    }
    PyErr_SetString(PyExc_OSError, "datagram from an address family other than IP");
    return NULL;
}

/* address_tuple for packet i's sender, from the recent senders when it is one (new reference). */
static PyObject *sender_tuple(FastPath *self, unsigned i) {
    const struct sockaddr_storage *sa = &self->raddrs[i];
    socklen_t salen = self->rmsgs[i].msg_hdr.msg_namelen;
    if (salen == 0 || salen > sizeof(struct sockaddr_in6)) return address_tuple(sa, salen);
    const unsigned char *bytes = (const unsigned char *)sa;
    Sender *s = &self->senders[hash_bytes(self->seed ^ 0x5e, bytes, salen) & (SENDERS - 1)];
    if (s->len == salen && memcmp(s->sa, bytes, salen) == 0) {
        Py_INCREF(s->tuple);
        return s->tuple;
    }
    PyObject *tuple = address_tuple(sa, salen);
    if (tuple == NULL) return NULL;
    Py_XSETREF(s->tuple, Py_NewRef(tuple));
    s->len = (uint8_t)salen;
    memcpy(s->sa, bytes, salen);
    return tuple;
}

/* Fill a sockaddr from a Python address tuple; 0 on success, -1 (no exception set) if bad. */
static int parse_address(PyObject *addr, struct sockaddr_storage *sa, socklen_t *salen) {
    if (!PyTuple_Check(addr) || PyTuple_GET_SIZE(addr) < 2) return -1;
    PyObject *host_obj = PyTuple_GET_ITEM(addr, 0);
    if (!PyUnicode_Check(host_obj)) return -1;
    const char *host = PyUnicode_AsUTF8(host_obj);
    if (host == NULL) {
        PyErr_Clear();
        return -1;
    }
    long port = PyLong_AsLong(PyTuple_GET_ITEM(addr, 1));
    if (port == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    if (port < 0 || port > 65535) return -1;
    memset(sa, 0, sizeof *sa);
    if (strchr(host, ':') == NULL) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;
        if (inet_pton(AF_INET, host, &in->sin_addr) != 1) return -1;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        *salen = sizeof *in;
        return 0;
    }
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;
    char plain[INET6_ADDRSTRLEN];
    const char *zone = strchr(host, '%');
    size_t n = zone ? (size_t)(zone - host) : strlen(host);
    if (n >= sizeof plain) return -1;
    memcpy(plain, host, n);
    plain[n] = '\0';
    if (inet_pton(AF_INET6, plain, &in6->sin6_addr) != 1) return -1;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)port);
    if (PyTuple_GET_SIZE(addr) >= 4) {
        unsigned long flow = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 2));
        unsigned long scope = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 3));
        if (PyErr_Occurred()) {
            PyErr_Clear();
            return -1;
        }
        in6->sin6_flowinfo = htonl((uint32_t)flow);
        in6->sin6_scope_id = (uint32_t)scope;
    }
    *salen = sizeof *in6;
    return 0;
}

/* ---- sending ------------------------------------------------------------------------------ */

/* sendmmsg the first n of msgs; a datagram the kernel refuses is counted and skipped. */
static void send_all(FastPath *self, int fd, struct mmsghdr *msgs, unsigned n) {
    unsigned done = 0;
    while (done < n) {
        int r = sendmmsg(fd, msgs + done, n - done, MSG_DONTWAIT);
        if (r < 0) {
            if (errno == EINTR) continue;
            self->send_errors++;
            done++;
        } else {
            done += (unsigned)r;
        }
    }
}

/* ---- the type ----------------------------------------------------------------------------- */

static double monotonic_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void free_answers(FastPath *self) {
    if (self->answers == NULL) return;
    for (size_t i = 0; i <= self->answer_mask; i++) {
        PyMem_RawFree(self->answers[i]);
        self->answers[i] = NULL;
    }
    self->answer_count = 0;
}

static void FastPath_dealloc(FastPath *self) {
    for (size_t i = 0; i < SENDERS; i++) Py_CLEAR(self->senders[i].tuple);
    free_answers(self);
    PyMem_RawFree(self->answers);
    PyMem_RawFree(self->clients);
    PyMem_RawFree(self->balancers);
    PyMem_RawFree(self->hits);
    PyMem_RawFree(self->rbufs);
    PyMem_RawFree(self->rmsgs);
    PyMem_RawFree(self->smsgs);
    PyMem_RawFree(self->riovs);
    PyMem_RawFree(self->siovs);
    PyMem_RawFree(self->raddrs);
    PyMem_RawFree(self->saddrs);
    PyMem_RawFree(self->abufs);
    PyMem_RawFree(self->seen);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int FastPath_init(FastPath *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"batch", "answers", "clients", NULL};
    Py_ssize_t batch = 64, answers = 200000, clients = 65536;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|nnn", kwlist, &batch, &answers, &clients))
        return -1;
    if (self->answers != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "FastPath is initialised once");
        return -1;
    }
    if (batch < 1 || batch > MAX_BATCH || answers < 0 || answers > 50000000 || clients < 0 ||
        clients > 50000000) {
        PyErr_SetString(PyExc_ValueError, "batch 1..1024, answers and clients 0..50,000,000");
        return -1;
    }
    self->batch = (unsigned)batch;
    self->answer_capacity = (size_t)answers;
    self->client_capacity = (size_t)clients;
    size_t aslots = table_slots(self->answer_capacity), cslots = table_slots(self->client_capacity);
    self->answer_mask = aslots - 1;
    self->client_mask = cslots - 1;
    self->answers = PyMem_RawCalloc(aslots, sizeof(Answer *));
    self->clients = PyMem_RawCalloc(cslots, sizeof(Client));
    self->rbufs = PyMem_RawMalloc((size_t)batch * RECV_SIZE);
    self->rmsgs = PyMem_RawCalloc((size_t)batch, sizeof(struct mmsghdr));
    self->smsgs = PyMem_RawCalloc((size_t)batch, sizeof(struct mmsghdr));
    self->riovs = PyMem_RawCalloc((size_t)batch, sizeof(struct iovec));
    self->siovs = PyMem_RawCalloc((size_t)batch * 4, sizeof(struct iovec));
    self->raddrs = PyMem_RawCalloc((size_t)batch, sizeof(struct sockaddr_storage));
    self->saddrs = PyMem_RawCalloc((size_t)batch, sizeof(struct sockaddr_storage));
    self->abufs = PyMem_RawMalloc((size_t)batch * MAX_ANSWER);
    self->seen = PyMem_RawCalloc((size_t)SEEN_BUCKETS * SEEN_WAYS, sizeof(uint64_t));
    if (!self->answers || !self->clients || !self->rbufs || !self->rmsgs || !self->smsgs ||
        !self->riovs || !self->siovs || !self->raddrs || !self->saddrs || !self->abufs ||
        !self->seen) {
        PyErr_NoMemory();
        return -1;
    }
    if (getrandom(&self->seed, sizeof self->seed, GRND_NONBLOCK) != sizeof self->seed)
        self->seed = (uint64_t)monotonic_now() ^ (uint64_t)(uintptr_t)self;
    return 0;
}

/* Count each TTL field down by `elapsed` seconds, stopping at 0 (as the cache renders it). */
static void age_ttls(unsigned char *answer, const unsigned char *offsets, unsigned count,
                     int64_t elapsed) {
    for (unsigned i = 0; i < count; i++) {
        uint16_t at;
        memcpy(&at, offsets + i * sizeof at, sizeof at);
        uint32_t ttl;
        memcpy(&ttl, answer + at, 4);
        ttl = ntohl(ttl);
        ttl = (int64_t)ttl > elapsed ? ttl - (uint32_t)elapsed : 0;
        ttl = htonl(ttl);
        memcpy(answer + at, &ttl, 4);
    }
}

/* The stored answer for packet i of the batch, set up in send slot `slot`; 0 if none. */
static int lookup_hit(FastPath *self, unsigned i, double now, unsigned slot) {
    size_t alen;
    const unsigned char *addr;
    Py_ssize_t at_query = query_of(self, i, &addr, &alen);
    if (at_query < 0) return 0;
    const unsigned char *buf = self->rbufs + (size_t)i * RECV_SIZE + at_query;
    Py_ssize_t len = self->rmsgs[i].msg_len - at_query;
    Py_ssize_t end = key_end(buf, len);
    if (end < 0) return 0;
    Client *client = client_find(self, addr, alen, client_hash(self, addr, alen));
    if (client == NULL || client->klass == 0 || client->credit == 0) return 0;
    client->referenced = 1;
    unsigned char key[MAX_KEY];
    size_t klen = (size_t)len - 2;
    make_key(buf, len, end, key);
    uint64_t h = key_hash(self, client->klass, key, klen);
    size_t at = answer_find(self, client->klass, key, klen, h);
    if (at == SIZE_MAX) {
        __builtin_prefetch(seen_bucket(self, h | 1)); /* for the doorkeeper, when offered */
        return 0;
    }
    Answer *a = self->answers[at];
    if (!(a->valid_until > now)) {
        answer_remove(self, at);
        return 0;
    }
    a->referenced = 1;
    if (client->credit != UNLIMITED) client->credit--;
    self->hits[a->stats_id]++;
    /* ID and question-name case from the query, the rest as stored: no copy, unless TTLs
     * have to be counted down (cache answers, a second or more after they were stored) */
    const unsigned char *ans = a->bytes + a->key_len;
    int64_t elapsed = (int64_t)now - a->second; /* truncated, as Python's int(now) */
    if (a->ttl_count && elapsed > 0) {
        unsigned char *copy = self->abufs + (size_t)slot * MAX_ANSWER;
        memcpy(copy, ans, a->answer_len);
        age_ttls(copy, ans + a->answer_len, a->ttl_count, elapsed);
        ans = copy;
    }
    struct iovec *iov = self->siovs + (size_t)slot * 4;
    iov[0] = (struct iovec){(void *)buf, 2};
    iov[1] = (struct iovec){(void *)(ans + 2), HEADER - 2};
    iov[2] = (struct iovec){(void *)(buf + HEADER), a->name_len};
    iov[3] = (struct iovec){(void *)(ans + HEADER + a->name_len),
                            (size_t)a->answer_len - HEADER - a->name_len};
    struct msghdr *m = &self->smsgs[slot].msg_hdr;
    memset(m, 0, sizeof *m);
    m->msg_name = &self->raddrs[i]; /* the sender: the client, or the balancer relaying it */
    m->msg_namelen = self->rmsgs[i].msg_hdr.msg_namelen;
    m->msg_iov = iov;
    m->msg_iovlen = 4;
    return 1;
}

/* Read one batch into the receive buffers: the count, 0 when none is waiting, -1 on error. */
static int receive_batch(FastPath *self, int fd) {
    for (unsigned i = 0; i < self->batch; i++) {
        self->riovs[i] = (struct iovec){self->rbufs + (size_t)i * RECV_SIZE, RECV_SIZE};
        struct msghdr *m = &self->rmsgs[i].msg_hdr;
        memset(m, 0, sizeof *m);
        m->msg_name = &self->raddrs[i];
        m->msg_namelen = sizeof(struct sockaddr_storage);
        m->msg_iov = &self->riovs[i];
        m->msg_iovlen = 1;
    }
    int n;
    do {
        n = recvmmsg(fd, self->rmsgs, self->batch, MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 0;
    return n;
}

static PyObject *FastPath_serve(FastPath *self, PyObject *args) {
    PyObject *sock;
    double now;
    if (!PyArg_ParseTuple(args, "Od:serve", &sock, &now)) return NULL;
    int fd = PyObject_AsFileDescriptor(sock);
    if (fd < 0) return NULL;
    double first = monotonic_now();
    for (unsigned round = 0;; round++) {
        int n = receive_batch(self, fd);
        if (n < 0) /* after a round served here, end quietly: an error that lasts (a closed
                    * socket) shows on the next call, a passing one is lost like a datagram */
            return round ? PyList_New(0) : PyErr_SetFromErrno(PyExc_OSError);
        if (n == 0) return PyList_New(0);
        double started = monotonic_now();
        double at = now + (started - first); /* the caller's clock, moved on by this call */
        PyObject *misses = PyList_New(0);
        if (misses == NULL) return NULL;
        unsigned hits = 0;
        int lookups = self->answer_count > 0 && self->client_count > 0;
        for (unsigned i = 0; i < (unsigned)n; i++) {
            if (lookups && lookup_hit(self, i, at, hits)) {
                hits++;
                continue;
            }
            PyObject *addr = sender_tuple(self, i);
            PyObject *data = addr == NULL ? NULL : PyBytes_FromStringAndSize(
                (const char *)(self->rbufs + (size_t)i * RECV_SIZE), self->rmsgs[i].msg_len);
            PyObject *item = data == NULL ? NULL : PyTuple_Pack(2, data, addr);
            Py_XDECREF(data);
            Py_XDECREF(addr);
            if (item == NULL || PyList_Append(misses, item) < 0) {
                Py_XDECREF(item);
                Py_DECREF(misses);
                return NULL;
            }
            Py_DECREF(item);
        }
        if (hits) {
            send_all(self, fd, self->smsgs, hits);
            self->hit_seconds += (monotonic_now() - started) / n * hits;
        }
        /* Python has queries to answer, or the loop is owed its turn: done. Otherwise what
         * arrived while this batch was served is read now, without a trip through the loop. */
        if (PyList_GET_SIZE(misses) > 0 || round + 1 >= SERVE_ROUNDS) return misses;
        Py_DECREF(misses);
    }
}

static PyObject *FastPath_send(FastPath *self, PyObject *args) {
    PyObject *sock, *replies;
    if (!PyArg_ParseTuple(args, "OO:send", &sock, &replies)) return NULL;
    int fd = PyObject_AsFileDescriptor(sock);
    if (fd < 0) return NULL;
    PyObject *seq = PySequence_Fast(replies, "send takes a sequence of (bytes, address)");
    if (seq == NULL) return NULL;
    Py_ssize_t total = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    Py_ssize_t at = 0;
    while (at < total) {
        unsigned n = 0;
        for (; at < total && n < self->batch; at++) {
            PyObject *item = items[at];
            char *data;
            Py_ssize_t len;
            struct msghdr *m = &self->smsgs[n].msg_hdr;
            socklen_t salen;
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
                PyBytes_AsStringAndSize(PyTuple_GET_ITEM(item, 0), &data, &len) < 0 ||
                parse_address(PyTuple_GET_ITEM(item, 1), &self->saddrs[n], &salen) < 0) {
                PyErr_Clear();
                self->send_errors++;
                continue;
            }
            self->siovs[n] = (struct iovec){data, (size_t)len};
            memset(m, 0, sizeof *m);
            m->msg_name = &self->saddrs[n];
            m->msg_namelen = salen;
            m->msg_iov = &self->siovs[n];
            m->msg_iovlen = 1;
            n++;
        }
        if (n) send_all(self, fd, self->smsgs, n);
    }
    Py_DECREF(seq);
    Py_RETURN_NONE;
}

/* The end of the question name of `query` when `answer` may be stored for it, else -1: the
 * query must be one `serve` can look up, the answer must echo its question name. */
static Py_ssize_t storable(const unsigned char *query, Py_ssize_t qlen, const unsigned char *ans,
                           size_t alen) {
    if (alen > MAX_ANSWER) return -1;
    Py_ssize_t end = key_end(query, qlen);
    if (end < 0 || alen < (size_t)end) return -1;
    for (Py_ssize_t i = HEADER; i < end; i++) {
        unsigned char c = ans[i], want = query[i];
        if (c >= 'A' && c <= 'Z') c |= 0x20;
        if (want >= 'A' && want <= 'Z') want |= 0x20;
        if (c != want) return -1;
    }
    return end;
}

/* The TTL offsets of `put` as uint16s in `out`; their count, or -1 when one is not a 4-byte
 * field after the question name (or there are too many). Sets no exception. */
static Py_ssize_t read_offsets(PyObject *seq, size_t alen, size_t after, uint16_t *out) {
    PyObject *fast = PySequence_Fast(seq, "ttl_offsets must be a sequence of ints");
    if (fast == NULL) {
        PyErr_Clear();
        return -1;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);
    for (Py_ssize_t i = 0; i < n && n <= MAX_TTLS; i++) {
        long at = PyLong_AsLong(PySequence_Fast_GET_ITEM(fast, i));
        if (at == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            n = -1;
            break;
        }
        if (at < (long)after || (size_t)at + 4 > alen) {
            n = -1;
            break;
        }
        out[i] = (uint16_t)at;
    }
    Py_DECREF(fast);
    return n > MAX_TTLS ? -1 : n;
}

/* Room in the hit counters for stats_id; -1 (MemoryError set) on failure. */
static int grow_hits(FastPath *self, size_t stats_id) {
    if (stats_id < self->hits_len) return 0;
    size_t len = self->hits_len ? self->hits_len : 64;
    while (len <= stats_id) len *= 2;
    uint64_t *grown = PyMem_RawRealloc(self->hits, len * sizeof(uint64_t));
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(grown + self->hits_len, 0, (len - self->hits_len) * sizeof(uint64_t));
    self->hits = grown;
    self->hits_len = len;
    return 0;
}

typedef struct {
    uint16_t klass;
    const unsigned char *query, *answer;
    Py_ssize_t query_len, end;
    size_t answer_len;
    double valid_until;
    size_t stats_id;
    const uint16_t *ttls;
    size_t ttl_count;
    int64_t second;
} Put;

static PyObject *store(FastPath *self, const Put *p) {
    if (grow_hits(self, p->stats_id) < 0) return NULL;
    unsigned char key[MAX_KEY];
    size_t klen = (size_t)p->query_len - 2;
    make_key(p->query, p->query_len, p->end, key);
    size_t ttl_bytes = p->ttl_count * sizeof(uint16_t);
    Answer *a = PyMem_RawMalloc(sizeof(Answer) + klen + p->answer_len + ttl_bytes);
    if (a == NULL) return PyErr_NoMemory();
    uint64_t h = key_hash(self, p->klass, key, klen);
    size_t at = answer_find(self, p->klass, key, klen, h);
    if (at != SIZE_MAX) answer_remove(self, at);
    if (self->answer_count >= self->answer_capacity) answer_evict(self);
    a->valid_until = p->valid_until;
    a->hash = h;
    a->second = p->second;
    a->stats_id = (uint32_t)p->stats_id;
    a->klass = p->klass;
    a->key_len = (uint16_t)klen;
    a->answer_len = (uint16_t)p->answer_len;
    a->name_len = (uint16_t)(p->end - HEADER);
    a->ttl_count = (uint16_t)p->ttl_count;
    a->referenced = 0;
    memcpy(a->bytes, key, klen);
    memcpy(a->bytes + klen, p->answer, p->answer_len);
    memcpy(a->bytes + klen + p->answer_len, p->ttls, ttl_bytes);
    size_t i = h & self->answer_mask;
    while (self->answers[i] != NULL) i = (i + 1) & self->answer_mask;
    self->answers[i] = a;
    self->answer_count++;
    Py_RETURN_TRUE;
}

static PyObject *FastPath_put(FastPath *self, PyObject *args) {
    int klass;
    Py_buffer query, answer;
    double valid_until;
    long long stats_id, second = 0;
    PyObject *offsets = NULL;
    if (!PyArg_ParseTuple(args, "iy*y*dL|OL:put", &klass, &query, &answer, &valid_until,
                          &stats_id, &offsets, &second))
        return NULL;
    PyObject *result;
    uint16_t ttls[MAX_TTLS];
    Put p = {(uint16_t)klass, query.buf, answer.buf, query.len, 0, (size_t)answer.len,
             valid_until, (size_t)stats_id, ttls, 0, second};
    p.end = storable(p.query, p.query_len, p.answer, p.answer_len);
    Py_ssize_t count = 0;
    if (klass < 1 || klass > MAX_KLASS || stats_id < 0 || stats_id >= MAX_STATS) {
        PyErr_SetString(PyExc_ValueError, "klass 1..65535, stats_id 0..2**20-1");
        result = NULL;
    } else if (self->answer_capacity == 0 || p.end < 0 ||
               (offsets != NULL &&
                (count = read_offsets(offsets, p.answer_len, (size_t)p.end, ttls)) < 0)) {
        result = Py_NewRef(Py_False);
    } else {
        p.ttl_count = (size_t)count;
        result = store(self, &p);
    }
    PyBuffer_Release(&query);
    PyBuffer_Release(&answer);
    return result;
}

/* The doorkeeper: whether a query like `query` (ID and name case aside) from a client of
 * `klass` was offered before and is still remembered; if not, remember it. The fingerprint is
 * the hash the answer table files the pair under (0 is kept for "empty"), so `serve` can fetch
 * the bucket of a query it did not answer while Python decides; a bucket forgets its oldest
 * when a fifth query lands in it. */
static PyObject *FastPath_admit(FastPath *self, PyObject *args) {
    int klass;
    Py_buffer query;
    if (!PyArg_ParseTuple(args, "iy*:admit", &klass, &query)) return NULL;
    const unsigned char *q = query.buf;
    Py_ssize_t len = query.len;
    Py_ssize_t end = klass >= 1 && klass <= MAX_KLASS ? key_end(q, len) : -1;
    if (end < 0) {
        PyBuffer_Release(&query);
        Py_RETURN_FALSE; /* never stored anyway */
    }
    unsigned char key[MAX_KEY];
    make_key(q, len, end, key);
    uint64_t h = key_hash(self, (uint16_t)klass, key, (size_t)len - 2) | 1;
    PyBuffer_Release(&query);
    uint64_t *bucket = seen_bucket(self, h);
    for (unsigned w = 0; w < SEEN_WAYS; w++)
        if (bucket[w] == h) Py_RETURN_TRUE;
    memmove(bucket + 1, bucket, (SEEN_WAYS - 1) * sizeof(uint64_t));
    bucket[0] = h;
    Py_RETURN_FALSE;
}

/* Set a client's class and credit; returns the credit it had (0 if it was not known). */
static uint32_t client_set(FastPath *self, const unsigned char *addr, size_t len, uint16_t klass,
                           uint32_t credit) {
    uint32_t h = client_hash(self, addr, len);
    Client *c = client_find(self, addr, len, h);
    if (c != NULL) {
        uint32_t had = c->credit;
        if (klass == 0) {
            client_remove(self, (size_t)(c - self->clients));
        } else {
            c->klass = klass;
            c->credit = credit;
        }
        return had;
    }
    if (klass == 0 || self->client_capacity == 0) return 0;
    if (self->client_count >= self->client_capacity) client_evict(self);
    size_t i = h & self->client_mask;
    while (self->clients[i].len != 0) i = (i + 1) & self->client_mask;
    c = &self->clients[i];
    memset(c, 0, sizeof *c);
    c->len = (uint8_t)len;
    c->klass = klass;
    c->hash = h;
    c->credit = credit;
    memcpy(c->addr, addr, len);
    self->client_count++;
    return 0;
}

static PyObject *FastPath_set_client(FastPath *self, PyObject *args) {
    Py_buffer addr;
    int klass;
    long long credit = -1;
    if (!PyArg_ParseTuple(args, "y*i|L:set_client", &addr, &klass, &credit)) return NULL;
    int ok = (addr.len == 4 || addr.len == 16) && klass >= 0 && klass <= MAX_KLASS &&
             credit >= -1 && credit < (long long)UNLIMITED;
    uint32_t had = 0;
    if (ok)
        had = client_set(self, addr.buf, (size_t)addr.len, (uint16_t)klass,
                         credit < 0 ? UNLIMITED : (uint32_t)credit);
    PyBuffer_Release(&addr);
    if (!ok) {
        PyErr_SetString(PyExc_ValueError,
                        "an address of 4 or 16 bytes, klass 0..65535, credit -1..2**32-2");
        return NULL;
    }
    return PyLong_FromLongLong(had == UNLIMITED ? -1 : (long long)had);
}

static PyObject *FastPath_set_balancers(FastPath *self, PyObject *args) {
    PyObject *networks;
    if (!PyArg_ParseTuple(args, "O:set_balancers", &networks)) return NULL;
    PyObject *seq = PySequence_Fast(networks, "set_balancers takes (address bytes, prefix) pairs");
    if (seq == NULL) return NULL;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Balancer *table = PyMem_RawCalloc(n > 0 ? (size_t)n : 1, sizeof(Balancer));
    if (table == NULL) {
        Py_DECREF(seq);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        Py_buffer addr;
        int prefix;
        PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "y*i", &addr, &prefix)) {
            if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyErr_Clear();
                PyErr_SetString(PyExc_ValueError, "a network is (address bytes, prefix length)");
            }
            PyMem_RawFree(table);
            Py_DECREF(seq);
            return NULL;
        }
        int ok = (addr.len == 4 || addr.len == 16) && prefix >= 0 && prefix <= addr.len * 8 &&
                 n <= MAX_BALANCERS;
        if (ok) {
            Balancer *b = &table[i];
            b->len = (uint8_t)addr.len;
            b->prefix = (uint8_t)prefix;
            for (Py_ssize_t k = 0; k < addr.len; k++) {
                int keep = prefix - (int)k * 8; /* bits of this byte in the prefix */
                unsigned mask = keep >= 8 ? 0xFF : keep <= 0 ? 0 : (0xFF00 >> keep) & 0xFF;
                b->addr[k] = ((const unsigned char *)addr.buf)[k] & mask;
            }
        }
        PyBuffer_Release(&addr);
        if (!ok) {
            PyMem_RawFree(table);
            Py_DECREF(seq);
            PyErr_SetString(PyExc_ValueError,
                            "an address of 4 or 16 bytes and a prefix that fits it, 4096 at most");
            return NULL;
        }
    }
    Py_DECREF(seq);
    PyMem_RawFree(self->balancers);
    self->balancers = table;
    self->balancer_count = (size_t)n;
    Py_RETURN_NONE;
}

static PyObject *FastPath_clear(FastPath *self, PyObject *Py_UNUSED(ignored)) {
    free_answers(self);
    memset(self->clients, 0, (self->client_mask + 1) * sizeof(Client));
    self->client_count = 0;
    Py_RETURN_NONE;
}

static PyObject *FastPath_harvest(FastPath *self, PyObject *Py_UNUSED(ignored)) {
    PyObject *pairs = PyList_New(0);
    if (pairs == NULL) return NULL;
    for (size_t i = 0; i < self->hits_len; i++) {
        if (self->hits[i] == 0) continue;
        PyObject *pair = Py_BuildValue("(nK)", (Py_ssize_t)i, (unsigned long long)self->hits[i]);
        if (pair == NULL || PyList_Append(pairs, pair) < 0) {
            Py_XDECREF(pair);
            Py_DECREF(pairs);
            return NULL;
        }
        Py_DECREF(pair);
        self->hits[i] = 0;
    }
    PyObject *out = Py_BuildValue("(NdK)", pairs, self->hit_seconds,
                                  (unsigned long long)self->send_errors);
    self->hit_seconds = 0.0;
    self->send_errors = 0;
    return out;
}

static PyObject *FastPath_get_answers(FastPath *self, void *Py_UNUSED(closure)) {
    return PyLong_FromSize_t(self->answer_count);
}

static PyObject *FastPath_get_clients(FastPath *self, void *Py_UNUSED(closure)) {
    return PyLong_FromSize_t(self->client_count);
}

static PyObject *FastPath_get_batch(FastPath *self, void *Py_UNUSED(closure)) {
    return PyLong_FromUnsignedLong(self->batch);
}

static PyMethodDef FastPath_methods[] = {
    {"serve", (PyCFunction)FastPath_serve, METH_VARARGS,
     "serve(sock, now) -> [(data, address)]: read a batch, answer what is stored, return the "
     "rest"},
    {"send", (PyCFunction)FastPath_send, METH_VARARGS,
     "send(sock, [(data, address)]): send answers made in Python, sendmmsg per batch"},
    {"put", (PyCFunction)FastPath_put, METH_VARARGS,
     "put(klass, query, answer, valid_until, stats_id, ttl_offsets=(), second=0) -> bool: "
     "store `answer` for repeating to queries like `query` (ID and name case aside); the TTL "
     "fields at ttl_offsets count down from `second` on"},
    {"admit", (PyCFunction)FastPath_admit, METH_VARARGS,
     "admit(klass, query) -> bool: whether a query like this one (ID and name case aside) from "
     "a client of `klass` was offered before and is remembered (about the last 262,144); "
     "remember it if not"},
    {"set_client", (PyCFunction)FastPath_set_client, METH_VARARGS,
     "set_client(address_bytes, klass, credit=-1) -> the credit it had: the client's class (0: "
     "answer it in Python only) and how many answers it may get here (-1: no limit)"},
    {"set_balancers", (PyCFunction)FastPath_set_balancers, METH_VARARGS,
     "set_balancers([(address_bytes, prefix_length)]): the load balancers whose PROXY v2 "
     "headers name the client (proxy_protocol_from); replaces the previous ones"},
    {"clear", (PyCFunction)FastPath_clear, METH_NOARGS,
     "forget every answer and client (not the balancers)"},
    {"harvest", (PyCFunction)FastPath_harvest, METH_NOARGS,
     "harvest() -> ([(stats_id, hits)], seconds, send_errors), counters reset"},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef FastPath_getset[] = {
    {"answers", (getter)FastPath_get_answers, NULL, "answers stored", NULL},
    {"clients", (getter)FastPath_get_clients, NULL, "clients with a class", NULL},
    {"batch", (getter)FastPath_get_batch, NULL, "datagrams read per call at most", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject FastPathType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "resolver.dns._fastpath.FastPath",
    .tp_doc = "FastPath(batch=64, answers=200000, clients=65536): batched UDP I/O and answers "
              "already rendered (see resolver/dns/fastpath.py)",
    .tp_basicsize = sizeof(FastPath),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)FastPath_init,
    .tp_dealloc = (destructor)FastPath_dealloc,
    .tp_methods = FastPath_methods,
    .tp_getset = FastPath_getset,
};

static struct PyModuleDef fastpath_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "resolver.dns._fastpath",
    .m_doc = "Batched UDP I/O and a table of answers already rendered (compiled).",
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__fastpath(void) {
    if (PyType_Ready(&FastPathType) < 0) return NULL;
    PyObject *m = PyModule_Create(&fastpath_module);
    if (m == NULL) return NULL;
    Py_INCREF(&FastPathType);
    if (PyModule_AddObject(m, "FastPath", (PyObject *)&FastPathType) < 0 ||
        PyModule_AddIntConstant(m, "MAX_KEY", MAX_KEY) < 0 ||
        PyModule_AddIntConstant(m, "MAX_ANSWER", MAX_ANSWER) < 0 ||
        PyModule_AddIntConstant(m, "RECV_SIZE", RECV_SIZE) < 0 ||
        PyModule_AddIntConstant(m, "SERVE_ROUNDS", SERVE_ROUNDS) < 0) {
        Py_DECREF(&FastPathType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
