// One direction of a TCP relay moved by the kernel: splice(2) from the source socket into a pipe
// and from the pipe into the destination socket, so no byte is copied through user space.
//
// libuv keeps both sockets non-blocking, so the thread waits in poll(2); an eventfd in the same
// poll set lets stop() wake it at once. The thread never closes, shuts down or reads past EOF on
// either socket: the JavaScript side owns them and takes them back (EOF included, which stays
// readable) once the thread has exited.
#include <node_api.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <fcntl.h>
#include <poll.h>
#include <string>
#include <sys/eventfd.h>
#include <thread>
#include <unistd.h>
#include <unordered_map>

namespace {

// A larger pipe moves more per splice call; the kernel may refuse (pipe-max-size), then 64 KiB stays.
constexpr int kPipeSize = 1 << 20;

struct Relay {
  uint32_t id = 0;
  int src = -1;
  int dst = -1;
  int wake = -1;
  // Made by start() so that the relay holds all its fds once start() returns; closed by the thread.
  int pipe_read = -1;
  int pipe_write = -1;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> bytes{0};
  std::thread thread;
  napi_threadsafe_function done = nullptr;
  // Written by the thread before it posts `done`, read on the main thread after the join.
  const char* end = "error";
  std::string reason;
};

// Main-thread only: relays by id, so JavaScript never holds a pointer.
std::unordered_map<uint32_t, Relay*> relays;
uint32_t next_id = 1;

std::string Failure(const char* what, int err) { return std::string(what) + ": " + std::strerror(err); }

void ClosePipe(Relay* r) {
  if (r->pipe_read >= 0) close(r->pipe_read);
  if (r->pipe_write >= 0) close(r->pipe_write);
  r->pipe_read = r->pipe_write = -1;
}

void Run(Relay* r) {
  const int pipefd[2] = {r->pipe_read, r->pipe_write};
  fcntl(pipefd[1], F_SETPIPE_SZ, kPipeSize);
  int got = fcntl(pipefd[1], F_GETPIPE_SZ);
  const size_t capacity = got > 0 ? static_cast<size_t>(got) : 65536;
  size_t in_pipe = 0;
  bool eof = false;
  // The pipe's capacity counts pages, and TCP fills them partly: a splice into a pipe holding far
  // fewer bytes than its size may still find it full (EAGAIN, like an empty socket). So while the
  // pipe holds bytes, an EAGAIN from the source means "wait for the destination", never "poll the
  // source", which would report it readable at once and spin.
  bool src_blocked = false;
  const unsigned flags = SPLICE_F_MOVE | SPLICE_F_NONBLOCK;

  for (;;) {
    if (r->stopping.load()) {
      r->end = "stopped";
      break;
    }
    bool moved = false;
    if (!eof && !src_blocked) {
      ssize_t n = splice(r->src, nullptr, pipefd[1], nullptr, capacity, flags);
      if (n > 0) {
        in_pipe += static_cast<size_t>(n);
        moved = true;
      } else if (n == 0) {
        eof = true;
        moved = true;
      } else if (errno == EAGAIN) {
        src_blocked = true;
      } else if (errno != EINTR) {
        r->reason = Failure("read", errno);
        break;
      }
    }
    if (in_pipe > 0) {
      ssize_t n = splice(pipefd[0], nullptr, r->dst, nullptr, in_pipe, flags);
      if (n > 0) {
        in_pipe -= static_cast<size_t>(n);
        r->bytes.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
        src_blocked = false;  // room in the pipe again
        moved = true;
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        r->reason = Failure("write", n < 0 ? errno : EPIPE);
        break;
      }
    }
    if (eof && in_pipe == 0) {
      r->end = "eof";
      break;
    }
    if (moved) continue;
    pollfd fds[2];
    fds[0] = {r->wake, POLLIN, 0};
    // An empty pipe: the source had nothing. Otherwise the destination is full.
    fds[1] = in_pipe == 0 ? pollfd{r->src, POLLIN, 0} : pollfd{r->dst, POLLOUT, 0};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) {
      r->reason = Failure("poll", errno);
      break;
    }
    src_blocked = false;
    // POLLERR / POLLHUP wake us too: the next splice call reports what happened.
  }
  ClosePipe(r);
  napi_call_threadsafe_function(r->done, nullptr, napi_tsfn_nonblocking);
}

// Joins the thread (it has posted its last call, or is about to on its way out) and frees the relay.
void Finish(Relay* r) {
  if (r->thread.joinable()) r->thread.join();
  relays.erase(r->id);
  if (r->wake >= 0) close(r->wake);
  ClosePipe(r);  // a thread that never started leaves it open
  napi_release_threadsafe_function(r->done, napi_tsfn_release);
  delete r;
}

void CallDone(napi_env env, napi_value callback, void* context, void*) {
  Relay* r = static_cast<Relay*>(context);
  if (r->thread.joinable()) r->thread.join();
  bool stopped = r->stopping.load();
  const std::string end = stopped ? "stopped" : r->end;
  double bytes = static_cast<double>(r->bytes.load());
  std::string reason = r->reason;
  Finish(r);
  if (env == nullptr || stopped) return;
  napi_value args[3], global;
  napi_create_string_utf8(env, end.c_str(), end.size(), &args[0]);
  napi_create_double(env, bytes, &args[1]);
  napi_create_string_utf8(env, reason.c_str(), reason.size(), &args[2]);
  napi_get_global(env, &global);
  napi_call_function(env, global, callback, 3, args, nullptr);
}

Relay* Find(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  uint32_t id = 0;
  if (argc < 1 || napi_get_value_uint32(env, argv[0], &id) != napi_ok) return nullptr;
  auto it = relays.find(id);
  return it == relays.end() ? nullptr : it->second;
}

napi_value Number(napi_env env, double value) {
  napi_value result;
  napi_create_double(env, value, &result);
  return result;
}

napi_value Start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int32_t src = -1, dst = -1;
  napi_valuetype cb_type = napi_undefined;
  if (argc == 3) napi_typeof(env, argv[2], &cb_type);
  if (argc != 3 || napi_get_value_int32(env, argv[0], &src) != napi_ok || napi_get_value_int32(env, argv[1], &dst) != napi_ok ||
      src < 0 || dst < 0 || cb_type != napi_function) {
    napi_throw_type_error(env, nullptr, "start(srcFd, dstFd, onDone)");
    return nullptr;
  }
  int pipefd[2];
  if (pipe2(pipefd, O_NONBLOCK | O_CLOEXEC) != 0) {
    napi_throw_error(env, nullptr, Failure("pipe2", errno).c_str());
    return nullptr;
  }
  int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    napi_throw_error(env, nullptr, Failure("eventfd", errno).c_str());
    close(pipefd[0]);
    close(pipefd[1]);
    return nullptr;
  }
  Relay* r = new Relay();
  r->id = next_id++;
  r->src = src;
  r->dst = dst;
  r->wake = wake;
  r->pipe_read = pipefd[0];
  r->pipe_write = pipefd[1];
  napi_value name;
  napi_create_string_utf8(env, "concierge-splice", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, argv[2], nullptr, name, 0, 1, nullptr, nullptr, r, CallDone, &r->done) != napi_ok) {
    close(wake);
    ClosePipe(r);
    delete r;
    napi_throw_error(env, nullptr, "napi_create_threadsafe_function failed");
    return nullptr;
  }
  relays[r->id] = r;
  try {
    r->thread = std::thread(Run, r);
  } catch (const std::exception& e) {
    Finish(r);
    napi_throw_error(env, nullptr, e.what());
    return nullptr;
  }
  return Number(env, r->id);
}

napi_value Progress(napi_env env, napi_callback_info info) {
  Relay* r = Find(env, info);
  return Number(env, r ? static_cast<double>(r->bytes.load(std::memory_order_relaxed)) : 0);
}

napi_value Stop(napi_env env, napi_callback_info info) {
  Relay* r = Find(env, info);
  if (r == nullptr || r->wake < 0) return Number(env, r ? static_cast<double>(r->bytes.load()) : 0);
  r->stopping.store(true);
  uint64_t one = 1;
  ssize_t ignored = write(r->wake, &one, sizeof one);
  (void)ignored;
  // The thread blocks only in poll, which the eventfd has just woken: this join is short. The
  // relay itself is freed by CallDone, which the thread has queued on its way out.
  if (r->thread.joinable()) r->thread.join();
  // The thread has closed its pipe; the eventfd goes now too, so a stopped relay holds no fd.
  close(r->wake);
  r->wake = -1;
  return Number(env, static_cast<double>(r->bytes.load()));
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"start", nullptr, Start, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"progress", nullptr, Progress, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"stop", nullptr, Stop, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  napi_define_properties(env, exports, 3, props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
