// What overlayfs and tmpfile users in the guest need from the server: the xattr name mapping
// (xattr_policy.h), RENAME2 with RENAME_WHITEOUT, and TMPFILE followed by LINK.
#include <sys/xattr.h>

#include <algorithm>
#include <string>
#include <vector>

#include "fuse_client.h"
#include "virtiofs/xattr_policy.h"

using namespace vfstest;
namespace xattr = krunlet::fs::xattr;

namespace {

constexpr uint64_t kRoot = FUSE_ROOT_ID;

Reply set_xattr(Client& c, uint64_t node, std::string_view name, std::string_view value, uint32_t flags = 0) {
    fuse_setxattr_in sx{};
    sx.size = static_cast<uint32_t>(value.size());
    sx.flags = flags;
    Args a;
    a.raw(std::string_view(reinterpret_cast<const char*>(&sx), FUSE_COMPAT_SETXATTR_IN_SIZE)).str(name).raw(value);
    return c.call(FUSE_SETXATTR, node, a);
}

Reply get_xattr(Client& c, uint64_t node, std::string_view name, uint32_t size = 256) {
    fuse_getxattr_in gx{};
    gx.size = size;
    return c.call(FUSE_GETXATTR, node, Args().obj(gx).str(name));
}

Reply list_xattr(Client& c, uint64_t node, uint32_t size) {
    fuse_getxattr_in gx{};
    gx.size = size;
    return c.call(FUSE_LISTXATTR, node, Args().obj(gx));
}

std::string host_xattr(const std::string& path, const char* name) {
    char buf[256];
    ssize_t n = ::lgetxattr(path.c_str(), name, buf, sizeof(buf));
    if (n < 0) return "<" + std::string(std::strerror(errno)) + ">";
    return std::string(buf, static_cast<size_t>(n));
}

std::string guest_list(std::string_view host) {
    std::string out(host.size() + 8, '#');
    auto n = xattr::to_guest_list(std::span<const char>(host.data(), host.size()), out);
    REQUIRE(n.ok());
    auto probe = xattr::to_guest_list(std::span<const char>(host.data(), host.size()), {});
    REQUIRE(probe.ok());
    CHECK(*probe == *n);
    out.resize(*n);
    return out;
}

using namespace std::string_literals;

}  // namespace

TEST_CASE("xattr names: what passes, what is mapped, what is refused") {
    CHECK(*xattr::to_host("user.mime_type") == "user.mime_type");
    CHECK(*xattr::to_host("security.capability") == "security.capability");
    CHECK(*xattr::to_host("system.posix_acl_access") == "system.posix_acl_access");
    CHECK(*xattr::to_host("system.posix_acl_default") == "system.posix_acl_default");
    CHECK(*xattr::to_host("trusted.overlay.opaque") == "user.krunlet.trusted.overlay.opaque");
    CHECK(*xattr::to_host("security.selinux") == "user.krunlet.security.selinux");
    CHECK(xattr::to_host("user.krunlet.trusted.overlay.opaque").error().code == EPERM);
    CHECK(xattr::to_host("user.krunlet.").error().code == EPERM);
    CHECK(xattr::to_host("system.nfs4_acl").error().code == EOPNOTSUPP);
    CHECK(xattr::to_host("os2.name").error().code == EOPNOTSUPP);
    CHECK(xattr::to_host("user").error().code == EOPNOTSUPP);
    // 255 bytes are fine in the guest, but the prefix would take the host name past 255.
    CHECK(xattr::to_host("trusted." + std::string(247, 'x')).error().code == ERANGE);
    CHECK(xattr::to_host("trusted." + std::string(234, 'x')).ok());
}

TEST_CASE("xattr lists: mapped names come back under the guest's name, host-only names are hidden") {
    const std::string host = "user.a\0user.krunlet.trusted.overlay.opaque\0trusted.overlay.origin\0"
                             "security.selinux\0security.capability\0user.krunlet.security.ima\0"
                             "user.krunlet.user.fake\0user.krunlet.security.capability\0"
                             "system.posix_acl_access\0system.other\0user.b"s;  // last one without NUL
    CHECK(guest_list(host) == "user.a\0trusted.overlay.opaque\0security.capability\0security.ima\0"
                              "system.posix_acl_access\0user.b\0"s);
    CHECK(guest_list("") == "");
    CHECK(guest_list("trusted.x\0"s) == "");

    std::string small(10, '\0');
    CHECK(xattr::to_guest_list(std::span<const char>(host.data(), host.size()), small).error().code == ERANGE);
    std::string unpriv(host.size(), '#');
    auto n = xattr::to_guest_list(std::span<const char>(host.data(), host.size()), unpriv, false);
    REQUIRE(n.ok());
    CHECK(unpriv.substr(0, *n) == "user.a\0security.capability\0security.ima\0system.posix_acl_access\0user.b\0"s);
}

TEST_CASE("the guest's trusted.* and security.* never touch the host's own") {
    TempDir d;
    write_file(d / "f", "");
    // The host's own overlayfs metadata and LSM label on the file.
    REQUIRE(::setxattr((d / "f").c_str(), "trusted.overlay.origin", "host", 4, 0) == 0);
    auto s = make_server(d.path());
    Client c(*s);
    uint64_t f = c.node(kRoot, "f");

    // The guest does not see the host's trusted.* ...
    CHECK(get_xattr(c, f, "trusted.overlay.origin").error() == ENODATA);
    // ... and what it writes there is its own.
    REQUIRE(set_xattr(c, f, "trusted.overlay.opaque", "y").error() == 0);
    REQUIRE(set_xattr(c, f, "trusted.overlay.origin", "guest").error() == 0);
    CHECK(host_xattr(d / "f", "trusted.overlay.opaque") == "<No data available>");
    CHECK(host_xattr(d / "f", "trusted.overlay.origin") == "host");
    CHECK(host_xattr(d / "f", "user.krunlet.trusted.overlay.opaque") == "y");
    Reply v = get_xattr(c, f, "trusted.overlay.origin");
    REQUIRE(v.error() == 0);
    CHECK(v.text() == "guest");
    CHECK(set_xattr(c, f, "trusted.overlay.opaque", "n", XATTR_CREATE).error() == EEXIST);

    REQUIRE(set_xattr(c, f, "security.selinux", "guest_t").error() == 0);
    CHECK(host_xattr(d / "f", "user.krunlet.security.selinux") == "guest_t");

    // Forging the mapped names directly is refused, in every op.
    CHECK(set_xattr(c, f, "user.krunlet.trusted.overlay.redirect", "/etc").error() == EPERM);
    CHECK(get_xattr(c, f, "user.krunlet.trusted.overlay.opaque").error() == EPERM);
    CHECK(c.call(FUSE_REMOVEXATTR, f, Args().str("user.krunlet.trusted.overlay.opaque")).error() == EPERM);
    CHECK(set_xattr(c, f, "system.sockprotoname", "x").error() == EOPNOTSUPP);

    // The listing, by size query and then in full, shows the guest's names only.
    REQUIRE(set_xattr(c, f, "user.plain", "1").error() == 0);
    Reply q = list_xattr(c, f, 0);
    REQUIRE(q.error() == 0);
    const std::string want = "trusted.overlay.opaque\0trusted.overlay.origin\0security.selinux\0user.plain\0"s;
    CHECK(q.as<fuse_getxattr_out>().size == want.size());
    Reply l = list_xattr(c, f, 4096);
    REQUIRE(l.error() == 0);
    std::string got = l.text();
    // listxattr order is the filesystem's; compare as sets of names.
    auto names = [](const std::string& s) {
        std::vector<std::string> v;
        for (size_t p = 0; p < s.size();) {
            size_t e = s.find('\0', p);
            v.push_back(s.substr(p, e - p));
            p = e + 1;
        }
        std::sort(v.begin(), v.end());
        return v;
    };
    CHECK(names(got) == names(want));
    CHECK(list_xattr(c, f, static_cast<uint32_t>(want.size() - 1)).error() == ERANGE);

    // An unprivileged caller is not shown trusted.* (the kernel lists them to CAP_SYS_ADMIN only).
    {
        Client user(*s);
        user.uid = user.gid = 1000;
        Reply ul = list_xattr(user, f, 4096);
        REQUIRE(ul.error() == 0);
        CHECK(names(ul.text()) == names("security.selinux\0user.plain\0"s));
    }

    REQUIRE(c.call(FUSE_REMOVEXATTR, f, Args().str("trusted.overlay.origin")).error() == 0);
    CHECK(host_xattr(d / "f", "trusted.overlay.origin") == "host");
    CHECK(host_xattr(d / "f", "user.krunlet.trusted.overlay.origin") == "<No data available>");
}

TEST_CASE("RENAME2 with RENAME_WHITEOUT leaves a 0:0 character device behind") {
    TempDir d;
    write_file(d / "upper", "data");
    auto s = make_server(d.path());
    Client c(*s);
    fuse_rename2_in r2{};
    r2.newdir = kRoot;
    r2.flags = RENAME_WHITEOUT;
    REQUIRE(c.call(FUSE_RENAME2, kRoot, Args().obj(r2).str("upper").str("moved")).error() == 0);
    CHECK(read_file(d / "moved") == "data");
    struct stat st = lstat_of(d / "upper");
    CHECK(S_ISCHR(st.st_mode));
    CHECK(st.st_rdev == 0);
    // The whiteout is never opened on the host.
    uint64_t w = c.node(kRoot, "upper");
    CHECK(c.open(w, O_RDONLY).error() == ENXIO);
}

TEST_CASE("TMPFILE: an unnamed file, written, then linked into the tree; O_EXCL keeps it unnamed") {
    TempDir d;
    REQUIRE(::mkdir((d / "dir").c_str(), 0755) == 0);
    auto s = make_server(d.path());
    Client c(*s);
    uint64_t dir = c.node(kRoot, "dir");

    auto tmpfile = [&](uint32_t flags, uint32_t mode, uint32_t umask) {
        fuse_create_in in{};
        in.flags = flags;
        in.mode = mode;
        in.umask = umask;
        // The 6.1 client sends the placeholder dentry's name, "/".
        return c.call(FUSE_TMPFILE, dir, Args().obj(in).str("/"));
    };
    Reply r = tmpfile(O_RDWR, S_IFREG | 0666, 022);
    REQUIRE(r.error() == 0);
    auto e = r.as<fuse_entry_out>();
    CHECK(S_ISREG(e.attr.mode));
    CHECK((e.attr.mode & 0777) == 0644);
    CHECK(e.attr.nlink == 0);
    fuse_open_out oo;
    std::memcpy(&oo, r.body.data() + sizeof(fuse_entry_out), sizeof(oo));
    REQUIRE(c.write(e.nodeid, oo.fh, 0, "tmp data").error() == 0);
    CHECK(c.lookup(dir, "named").error() == ENOENT);  // nothing has a name yet

    fuse_link_in li{};
    li.oldnodeid = e.nodeid;
    Reply lr = c.call(FUSE_LINK, dir, Args().obj(li).str("named"));
    REQUIRE(lr.error() == 0);
    CHECK(lr.as<fuse_entry_out>().nodeid == e.nodeid);
    CHECK(lr.as<fuse_entry_out>().attr.nlink == 1);
    c.release(e.nodeid, oo.fh);
    CHECK(read_file(d / "dir/named") == "tmp data");

    Reply x = tmpfile(O_WRONLY | O_EXCL, S_IFREG | 0600, 0);
    REQUIRE(x.error() == 0);
    li.oldnodeid = x.as<fuse_entry_out>().nodeid;
    CHECK(c.call(FUSE_LINK, dir, Args().obj(li).str("never")).error() == ENOENT);

    CHECK(tmpfile(O_RDONLY, S_IFREG | 0600, 0).error() == EINVAL);
    uint64_t named = c.node(dir, "named");
    CHECK(c.call(FUSE_TMPFILE, named, Args().obj(fuse_create_in{O_RDWR, 0600, 0, 0}).str("/")).error() == ENOTDIR);
}
