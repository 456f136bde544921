// Whole-file reads and atomic writes. write_file_atomic writes to a temporary file in the same
// directory ("<path>.tmp.<pid>.<counter>"), flushes it to disk and renames it over the target
// (then flushes the directory), so a crash or an error at any point leaves either the old file or
// the new one, never a half-written file. On failure the temporary file is removed and an IOError
// names the path and the system error. The new file gets the default mode (0666 minus umask),
// not the old file's; a symlink at `path` is replaced, not followed.
#pragma once

#include <functional>
#include <string>

namespace attnlab {

std::string read_file(const std::string& path);  // IOError if missing or unreadable
void write_file_atomic(const std::string& path, const std::string& bytes);
// Checks, before a long computation, that write_file_atomic(path, ...) can succeed later: the
// directory holding `path` exists and is writable, and `path` is not a directory. IOError
// "<what>: cannot write '<path>': ..." otherwise (e.g. a training's checkpoint, checked before its
// first epoch rather than at its first validation).
void check_writable_path(const std::string& path, const std::string& what);
// Rewrites the text file `path` atomically as `head` followed by its lines for which keep(line)
// is true, each ending in a newline (a log cut back to a checkpoint on --resume). A missing file
// stays missing.
void keep_lines_atomic(const std::string& path,
                       const std::string& head,
                       const std::function<bool(const std::string& line)>& keep);

// Removes the temporary files that write_file_atomic(path, ...) left behind when its process was
// killed mid-write (SIGKILL cannot be caught): "<path>.tmp.<pid>.<n>" whose process no longer
// runs. Files of running processes (this one included) are kept, as is anything else. Returns the
// number removed. Called by the writers of long-running state (training checkpoints and logs)
// when they start.
int remove_stale_temp_files(const std::string& path);

// Test hook for fault injection: when set, write_file_atomic calls it with the target path after
// each 64 KiB chunk (and the final partial one) of the temporary file, `written` being the bytes
// written so far; the hook may throw (a simulated write error): the temporary file is then
// removed, the target left untouched, and the error rethrown (as an IOError if it was not one).
// Pass nullptr to remove the hook. Thread-safe.
void set_write_fault_hook(std::function<void(const std::string& path, std::size_t written)> hook);

}  // namespace attnlab
