#include "core/file_io.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <fstream>
#include <mutex>
#include <system_error>
#include <utility>
#include <vector>

#include "core/error.hpp"

namespace attnlab {
namespace {

using FaultHook = std::function<void(const std::string& path, std::size_t written)>;

std::mutex& hook_mutex() {
  static std::mutex m;
  return m;
}
FaultHook& hook_slot() {
  static FaultHook hook;
  return hook;
}

// strerror() is not thread-safe; libstdc++'s category message uses strerror_r.
std::string errno_text(int err) {
  return std::generic_category().message(err);
}

// Chunked writes let the fault hook fire in the middle of a large file, the case a real disk
// error (ENOSPC half-way through) produces.
constexpr std::size_t kWriteChunk = 64 * 1024;

// Closes and removes the temporary file unless released; so every early exit (error or a
// throwing hook) cleans up the same way.
class TempFile {
 public:
  TempFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  ~TempFile() {
    if (fd_ >= 0)
      ::close(fd_);
    if (!released_)
      ::unlink(path_.c_str());
  }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  int fd() const { return fd_; }
  // close() can report a deferred write error (NFS, quota), so its result matters.
  int close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }
  void release() { released_ = true; }

 private:
  std::string path_;
  int fd_;
  bool released_ = false;
};

std::string parent_dir(const std::string& path) {
  const std::size_t slash = path.find_last_of('/');
  if (slash == std::string::npos)
    return ".";
  if (slash == 0)
    return "/";
  return path.substr(0, slash);
}

// Makes the rename itself durable. Best effort: some file systems refuse fsync on directories,
// and the data is already safe in the renamed file.
void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0)
    return;
  (void)::fsync(fd);
  ::close(fd);
}

}  // namespace

void check_writable_path(const std::string& path, const std::string& what) {
  ATTNLAB_CHECK(!path.empty(), IOError, what, ": the path is empty");
  const std::string dir = parent_dir(path);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) {
    const int err = errno;
    throw IOError(what + ": cannot write '" + path + "': directory '" + dir +
                  "': " + errno_text(err));
  }
  ATTNLAB_CHECK(S_ISDIR(st.st_mode),
                IOError,
                what,
                ": cannot write '",
                path,
                "': '",
                dir,
                "' is not a directory");
  ATTNLAB_CHECK(::access(dir.c_str(), W_OK | X_OK) == 0,  // creating a file needs both
                IOError,
                what,
                ": cannot write '",
                path,
                "': directory '",
                dir,
                "' is not writable");
  ATTNLAB_CHECK(::stat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode),
                IOError,
                what,
                ": cannot write '",
                path,
                "': it is a directory");
}

std::string read_file(const std::string& path) {
  // errno is saved at once: building the message may run code that changes it.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  int err = errno;
  ATTNLAB_CHECK(fd >= 0, IOError, "read_file: cannot open '", path, "': ", errno_text(err));
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};

  struct stat st {};
  const int stat_rc = ::fstat(fd, &st);
  err = errno;
  ATTNLAB_CHECK(stat_rc == 0, IOError, "read_file: cannot stat '", path, "': ", errno_text(err));
  ATTNLAB_CHECK(
      !S_ISDIR(st.st_mode), IOError, "read_file: cannot read '", path, "': it is a directory");
  std::string bytes;
  // st_size is only a hint (0 for pipes and /proc files; the file may grow): read until EOF.
  std::size_t capacity = S_ISREG(st.st_mode) ? static_cast<std::size_t>(st.st_size) + 1 : 4096;
  bytes.resize(capacity);
  std::size_t used = 0;
  for (;;) {
    if (used == bytes.size())
      bytes.resize(bytes.size() * 2);
    const ssize_t n = ::read(fd, &bytes[used], bytes.size() - used);
    if (n < 0) {
      err = errno;
      if (err == EINTR)
        continue;
      throw IOError(detail::concat("read_file: cannot read '", path, "': ", errno_text(err)));
    }
    if (n == 0)
      break;
    used += static_cast<std::size_t>(n);
  }
  bytes.resize(used);
  return bytes;
}

void set_write_fault_hook(std::function<void(const std::string& path, std::size_t written)> hook) {
  std::lock_guard<std::mutex> lock(hook_mutex());
  hook_slot() = std::move(hook);
}

void write_file_atomic(const std::string& path, const std::string& bytes) {
  ATTNLAB_CHECK(!path.empty(), IOError, "write_file_atomic: empty path");
  FaultHook hook;
  {
    std::lock_guard<std::mutex> lock(hook_mutex());
    hook = hook_slot();
  }

  // Same directory as the target, so rename() stays on one file system and is atomic. The pid
  // and a process-wide counter keep concurrent writers (threads or processes) apart; O_EXCL
  // refuses to reuse a stale file left by a crash.
  static std::atomic<unsigned long> counter{0};
  const std::string tmp =
      detail::concat(path, ".tmp.", static_cast<long>(::getpid()), ".", counter.fetch_add(1));
  // errno is saved at once: building a message may run code that changes it.
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  int err = errno;
  ATTNLAB_CHECK(fd >= 0,
                IOError,
                "write_file_atomic: cannot create temporary file '",
                tmp,
                "' for '",
                path,
                "': ",
                errno_text(err));
  TempFile file(tmp, fd);

  std::size_t written = 0;
  while (written < bytes.size()) {
    const std::size_t chunk = std::min(kWriteChunk, bytes.size() - written);
    std::size_t done = 0;
    while (done < chunk) {  // a write may be short or interrupted: finish the chunk
      const ssize_t n = ::write(file.fd(), bytes.data() + written + done, chunk - done);
      if (n <= 0) {
        err = n == 0 ? ENOSPC : errno;  // 0 bytes for a non-empty write: no progress possible
        if (err == EINTR)
          continue;
        throw IOError(detail::concat("write_file_atomic: cannot write '",
                                     path,
                                     "' (",
                                     written + done,
                                     " of ",
                                     bytes.size(),
                                     " bytes written): ",
                                     errno_text(err)));
      }
      done += static_cast<std::size_t>(n);
    }
    written += chunk;
    if (hook) {
      try {
        hook(path, written);
      } catch (const IOError&) {
        throw;
      } catch (const std::exception& e) {
        throw IOError(detail::concat("write_file_atomic: cannot write '",
                                     path,
                                     "' (",
                                     written,
                                     " of ",
                                     bytes.size(),
                                     " bytes written): ",
                                     e.what()));
      } catch (...) {
        throw IOError(detail::concat("write_file_atomic: cannot write '",
                                     path,
                                     "' (",
                                     written,
                                     " of ",
                                     bytes.size(),
                                     " bytes written): unknown error"));
      }
    }
  }
  int rc = ::fsync(file.fd());
  err = errno;
  ATTNLAB_CHECK(
      rc == 0, IOError, "write_file_atomic: cannot flush '", tmp, "' to disk: ", errno_text(err));
  rc = file.close();
  err = errno;
  ATTNLAB_CHECK(rc == 0, IOError, "write_file_atomic: cannot close '", tmp, "': ", errno_text(err));
  rc = ::rename(tmp.c_str(), path.c_str());
  err = errno;
  ATTNLAB_CHECK(rc == 0,
                IOError,
                "write_file_atomic: cannot rename '",
                tmp,
                "' to '",
                path,
                "': ",
                errno_text(err));
  file.release();
  fsync_dir(parent_dir(path));
}

void keep_lines_atomic(const std::string& path,
                       const std::string& head,
                       const std::function<bool(const std::string& line)>& keep) {
  std::ifstream in(path);
  if (!in)
    return;
  std::string kept = head, line;
  while (std::getline(in, line)) {
    if (keep(line))
      kept += line + "\n";
  }
  in.close();
  write_file_atomic(path, kept);
}

int remove_stale_temp_files(const std::string& path) {
  const std::string dir = parent_dir(path);
  const std::size_t slash = path.find_last_of('/');
  const std::string prefix = (slash == std::string::npos ? path : path.substr(slash + 1)) + ".tmp.";
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr)
    return 0;  // no directory: nothing was ever written there
  std::vector<std::string> stale;
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.compare(0, prefix.size(), prefix) != 0)
      continue;
    // The rest must be exactly "<pid>.<counter>", both decimal.
    const std::string rest = name.substr(prefix.size());
    const std::size_t dot = rest.find('.');
    auto all_digits = [](const std::string& t) {
      return !t.empty() && t.size() <= 18 &&
             std::all_of(t.begin(), t.end(), [](char c) { return c >= '0' && c <= '9'; });
    };
    if (dot == std::string::npos || !all_digits(rest.substr(0, dot)) ||
        !all_digits(rest.substr(dot + 1)))
      continue;
    const long long pid = std::stoll(rest.substr(0, dot));
    // kill(pid, 0) probes without signalling; ESRCH: no such process. A reused pid keeps the
    // file (conservative: never delete what a live writer may own).
    if (pid <= 0 || pid == static_cast<long long>(::getpid()))
      continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
      stale.push_back(dir + "/" + name);
  }
  ::closedir(d);
  int removed = 0;
  for (const std::string& f : stale) removed += ::unlink(f.c_str()) == 0 ? 1 : 0;
  return removed;
}

}  // namespace attnlab
