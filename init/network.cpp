#include "init/network.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/route.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/fd.h"
#include "init/guest_setup.h"

namespace krunlet::init {

namespace {

sockaddr ipv4(const char* text) {
    sockaddr_in in{};
    in.sin_family = AF_INET;
    ::inet_pton(AF_INET, text, &in.sin_addr);
    sockaddr out{};
    std::memcpy(&out, &in, sizeof in);
    return out;
}

Result<void> write_new_file(const std::string& path, const std::string& text) {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
    if (!fd.valid()) return errno_error("creating " + path);
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size()))
        return errno_error("writing " + path);
    return {};
}

}  // namespace

std::string prefix_netmask(unsigned prefix) {
    const uint32_t mask = prefix == 0 ? 0 : prefix >= 32 ? ~uint32_t{0} : ~uint32_t{0} << (32 - prefix);
    return std::to_string(mask >> 24) + "." + std::to_string((mask >> 16) & 0xff) + "." +
           std::to_string((mask >> 8) & 0xff) + "." + std::to_string(mask & 0xff);
}

Result<bool> configure_eth0(const NetSettings& net) {
    UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!s.valid()) return errno_error("eth0: socket(AF_INET)");
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "eth0", IFNAMSIZ - 1);
    if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) < 0) {
        if (errno == ENODEV) return false;
        return errno_error("eth0: SIOCGIFFLAGS");
    }
    ifr.ifr_addr = ipv4(net.address.c_str());
    if (::ioctl(s.get(), SIOCSIFADDR, &ifr) < 0) return errno_error("eth0: setting address " + net.address);
    const std::string mask = prefix_netmask(net.prefix);
    ifr.ifr_netmask = ipv4(mask.c_str());
    if (::ioctl(s.get(), SIOCSIFNETMASK, &ifr) < 0) return errno_error("eth0: setting netmask " + mask);
    if (::ioctl(s.get(), SIOCGIFFLAGS, &ifr) < 0) return errno_error("eth0: SIOCGIFFLAGS");
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    if (::ioctl(s.get(), SIOCSIFFLAGS, &ifr) < 0) return errno_error("eth0: bringing it up");

    rtentry rt{};
    rt.rt_dst = ipv4("0.0.0.0");
    rt.rt_genmask = ipv4("0.0.0.0");
    rt.rt_gateway = ipv4(net.gateway.c_str());
    rt.rt_flags = RTF_UP | RTF_GATEWAY;
    if (::ioctl(s.get(), SIOCADDRT, &rt) < 0 && errno != EEXIST)
        return errno_error("eth0: default route via " + net.gateway);
    return true;
}

Result<void> allow_loopback_on_eth0() {
    const char* path = "/proc/sys/net/ipv4/conf/eth0/route_localnet";
    UniqueFd fd(::open(path, O_WRONLY | O_CLOEXEC));
    if (!fd.valid() || ::write(fd.get(), "1", 1) != 1)
        return errno_error(std::string("writing 1 to ") + path +
                           " (guest listeners bound to 127.0.0.1 stay unreachable from the host)");
    return {};
}

bool resolv_conf_usable(std::string_view text) {
    size_t pos = 0;
    while (pos < text.size()) {
        size_t end = text.find('\n', pos);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(pos, end - pos);
        pos = end + 1;
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
        if (!line.starts_with("nameserver")) continue;
        line.remove_prefix(10);
        if (line.empty() || (line.front() != ' ' && line.front() != '\t')) continue;
        while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
        size_t word = line.find_first_of(" \t#\r");
        std::string_view addr = line.substr(0, word);
        if (addr.empty() || addr.starts_with("127.") || addr == "::1") continue;
        return true;
    }
    return false;
}

Result<void> ensure_resolver(const std::string& nameserver) {
    const std::string conf = "/etc/resolv.conf";
    const std::string ours = "nameserver " + nameserver + "\n";
    struct stat st {};
    if (::lstat(conf.c_str(), &st) != 0) {
        if (errno != ENOENT) return errno_error("stat " + conf);
        if (::access("/etc", W_OK) != 0) return {};  // no /etc to put it in: nothing resolves anyway
        return write_new_file(conf, ours);
    }
    if (S_ISREG(st.st_mode)) {
        auto text = read_file(conf, 64 * 1024);
        if (text && resolv_conf_usable(*text)) return {};
    }
    // Loopback-only, empty, a dangling symlink (systemd-resolved's stub) or unreadable: cover
    // it with our own file from /dev (a tmpfs init mounted), never changing the image's.
    const std::string shadow = "/dev/.krunlet-resolv.conf";
    ::unlink(shadow.c_str());
    KRUNLET_CHECK(write_new_file(shadow, ours));
    if (!S_ISREG(st.st_mode)) {
        // A bind mount needs a file to land on; a symlink is replaced by one.
        if (::unlink(conf.c_str()) != 0) return errno_error("replacing the symlink " + conf);
        return write_new_file(conf, ours);
    }
    if (::mount(shadow.c_str(), conf.c_str(), nullptr, MS_BIND, nullptr) != 0)
        return errno_error("bind-mounting a resolv.conf with nameserver " + nameserver + " over " + conf);
    return {};
}

}  // namespace krunlet::init
