#include "base/fd.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "base/result.h"

namespace krunlet {

void UniqueFd::reset(int fd) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
}

void Mapping::reset() {
    if (addr_ != nullptr) ::munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
}

Error errno_error(const std::string& what) {
    int e = errno;
    return Error{e, what + ": " + std::strerror(e)};
}

}  // namespace krunlet
