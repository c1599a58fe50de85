// The two syscalls Node lacks for speaking netlink in-process: a netlink socket, and setns(2) to enter a network
// namespace on the calling thread (so a socket made there stays in it). Everything else (messages, attributes,
// errors) is TypeScript in pkg/netlink; the socket is read and written with fs.readSync/fs.writeSync.
// Both return -errno on failure instead of throwing: the caller names the object in its error.
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <errno.h>
#include <linux/netlink.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <node_api.h>

#ifndef SOL_NETLINK
#define SOL_NETLINK 270
#endif
#ifndef NETLINK_EXT_ACK
#define NETLINK_EXT_ACK 11
#endif
#ifndef NETLINK_GET_STRICT_CHK
#define NETLINK_GET_STRICT_CHK 12
#endif

static int32_t arg_int(napi_env env, napi_callback_info info, size_t i, size_t n) {
  napi_value argv[2];
  size_t argc = n;
  int32_t v = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc <= i) return -1;
  napi_get_value_int32(env, argv[i], &v);
  return v;
}

static napi_value int_value(napi_env env, int32_t v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

// socket(protocol): a blocking, close-on-exec netlink socket of that protocol (NETLINK_ROUTE 0,
// NETLINK_NETFILTER 12) with extended acks on (the kernel's own words in errors) and strict dump checking (the
// kernel filters dumps by the header's index and table; kernels before 4.20 ignore it and dump everything,
// which the caller filters anyway); fd or -errno
static napi_value nl_socket(napi_env env, napi_callback_info info) {
  int32_t protocol = arg_int(env, info, 0, 1);
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
  if (fd < 0) return int_value(env, -errno);
  int one = 1;
  setsockopt(fd, SOL_NETLINK, NETLINK_EXT_ACK, &one, sizeof one);
  setsockopt(fd, SOL_NETLINK, NETLINK_GET_STRICT_CHK, &one, sizeof one);
  // a kernel that never answers (a lost ack) must not hang the call: reads give up after 10 s with EAGAIN
  struct timeval limit = {.tv_sec = 10, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &limit, sizeof limit);
  return int_value(env, fd);
}

// setns(fd, nstype): enter the namespace fd refers to, on this thread only; 0 or -errno
static napi_value nl_setns(napi_env env, napi_callback_info info) {
  int32_t fd = arg_int(env, info, 0, 2);
  int32_t type = arg_int(env, info, 1, 2);
  return int_value(env, setns(fd, type) == 0 ? 0 : -errno);
}

NAPI_MODULE_INIT() {
  napi_value f;
  napi_create_function(env, "socket", NAPI_AUTO_LENGTH, nl_socket, NULL, &f);
  napi_set_named_property(env, exports, "socket", f);
  napi_create_function(env, "setns", NAPI_AUTO_LENGTH, nl_setns, NULL, &f);
  napi_set_named_property(env, exports, "setns", f);
  return exports;
}
