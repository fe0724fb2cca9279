// edgefit's one native module (issue 19): mmap(MAP_SHARED) of a range of an open file as an
// ArrayBuffer, so the serve process's worker hands onnxruntime the bytes a client left in
// /dev/shm without reading them into a buffer first, and writes outputs straight into the
// client's region. Node has no mmap; third-party mmap packages are NAN-based and unmaintained,
// and this is all the serve path needs:
//   map(fd, offset, length, writable) -> ArrayBuffer of exactly `length` bytes at `offset`
//   unmap(arrayBuffer)                -> detaches it (every view becomes length 0) and munmaps
// The mapping is page-aligned underneath; the ArrayBuffer starts at the requested byte. A buffer
// never unmapped is unmapped by its finalizer (garbage collection, or its thread's teardown: Node
// runs external buffers' finalizers in the environment's cleanup). Failures throw an Error whose
// `code` is the errno name (EINVAL, ENOMEM, ...).
#include <errno.h>
#include <node_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct mapping {
  void *base; // what mmap returned (page-aligned)
  size_t len; // what was mapped (page-aligned length)
  int live;   // 0 once unmapped (explicitly or by the finalizer)
} mapping;

static const char *errno_name(int e) {
  switch (e) {
    case EINVAL: return "EINVAL";
    case ENOMEM: return "ENOMEM";
    case EBADF: return "EBADF";
    case EACCES: return "EACCES";
    case ENODEV: return "ENODEV";
    case EOVERFLOW: return "EOVERFLOW";
    case ENFILE: return "ENFILE";
    case EMFILE: return "EMFILE";
    case EAGAIN: return "EAGAIN";
    case EPERM: return "EPERM";
    case ETXTBSY: return "ETXTBSY";
    default: return "EIO";
  }
}

static napi_value throw_errno(napi_env env, const char *what, int e) {
  char msg[160];
  snprintf(msg, sizeof msg, "%s failed: %s (%s)", what, errno_name(e), strerror(e));
  napi_throw_error(env, errno_name(e), msg);
  return NULL;
}

static napi_value throw_usage(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_INVALID_ARG", msg);
  return NULL;
}

static void finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)data;
  mapping *m = hint;
  if (m->live) munmap(m->base, m->len);
  free(m);
}

// A whole number in [0, 2^53) from a JS number (fd, offset and length are all of that kind).
static int get_whole(napi_env env, napi_value v, int64_t *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return 0;
  if (!(d >= 0 && d < 9007199254740992.0) || d != (double)(int64_t)d) return 0;
  *out = (int64_t)d;
  return 1;
}

static napi_value map(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 4)
    return throw_usage(env, "map(fd, offset, length, writable) takes 4 arguments");
  int64_t fd, offset, length;
  bool writable;
  if (!get_whole(env, argv[0], &fd) || fd > INT32_MAX) return throw_usage(env, "map: fd must be a file descriptor");
  if (!get_whole(env, argv[1], &offset)) return throw_usage(env, "map: offset must be a whole number");
  if (!get_whole(env, argv[2], &length) || length == 0) return throw_usage(env, "map: length must be a positive whole number");
  if (napi_get_value_bool(env, argv[3], &writable) != napi_ok) return throw_usage(env, "map: writable must be a boolean");
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) return throw_errno(env, "sysconf(_SC_PAGESIZE)", errno);
  int64_t start = offset - offset % page;
  size_t delta = (size_t)(offset - start);
  if ((uint64_t)length > SIZE_MAX - delta) return throw_errno(env, "map", EOVERFLOW);
  size_t len = (size_t)length + delta;
  void *base = mmap(NULL, len, PROT_READ | (writable ? PROT_WRITE : 0), MAP_SHARED, (int)fd, (off_t)start);
  if (base == MAP_FAILED) return throw_errno(env, "mmap", errno);
  mapping *m = malloc(sizeof *m);
  if (!m) {
    munmap(base, len);
    return throw_errno(env, "map", ENOMEM);
  }
  m->base = base;
  m->len = len;
  m->live = 1;
  napi_value ab;
  napi_status st = napi_create_external_arraybuffer(env, (char *)base + delta, (size_t)length, finalize, m, &ab);
  if (st != napi_ok) {
    munmap(base, len);
    free(m);
    // an exception may already be pending (e.g. external buffers refused in a sandboxed V8)
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (!pending) napi_throw_error(env, "ERR_EXTERNAL_BUFFER", "map: cannot create an external ArrayBuffer");
    return NULL;
  }
  // the mapping's bookkeeping rides on the buffer itself, so unmap() finds it without a table
  st = napi_wrap(env, ab, m, NULL, NULL, NULL);
  if (st != napi_ok) {
    // the finalizer owns m and the mapping now; it unmaps when the buffer is collected
    napi_throw_error(env, "ERR_WRAP", "map: cannot attach the mapping to its ArrayBuffer");
    return NULL;
  }
  return ab;
}

static napi_value unmap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1)
    return throw_usage(env, "unmap(arrayBuffer) takes 1 argument");
  mapping *m = NULL;
  if (napi_unwrap(env, argv[0], (void **)&m) != napi_ok || !m) {
    napi_value ex;
    napi_get_and_clear_last_exception(env, &ex);
    return throw_usage(env, "unmap: not an ArrayBuffer from map()");
  }
  if (!m->live) return NULL; // twice is harmless
  // detach first: no JS view can reach the pages once they are gone. Marked unmapped before, and
  // m not touched after: should the buffer's finalizer run during the detach, it frees m and
  // leaves the unmapping to us
  void *base = m->base;
  size_t len = m->len;
  m->live = 0;
  if (napi_detach_arraybuffer(env, argv[0]) != napi_ok) {
    m->live = 1;
    napi_throw_error(env, "ERR_DETACH", "unmap: the ArrayBuffer cannot be detached");
    return NULL;
  }
  if (munmap(base, len) != 0) return throw_errno(env, "munmap", errno);
  return NULL;
}

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
    {"map", NULL, map, NULL, NULL, NULL, napi_enumerable, NULL},
    {"unmap", NULL, unmap, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, 2, props) != napi_ok) return NULL;
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
