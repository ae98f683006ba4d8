// krunlet-fsconform: regular files, rename, hard links and symlinks.
#include <fcntl.h>
#include <linux/fs.h>  // RENAME_NOREPLACE, RENAME_EXCHANGE
#include <stdio.h>     // renameat2
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "conform_ctx.h"

namespace fsconform {

namespace {

// The explicit "old" time that makes a later change of mtime deterministic to observe:
// a write or truncate must move mtime away from it, whatever the clock's granularity.
constexpr struct timespec kOld = {1000000000, 0};

void set_old_mtime(Ctx& c, const char* path) {
    struct timespec ts[2] = {kOld, kOld};
    c.call(std::string("utimensat(") + path + ",old,old)", [&] { return ::utimensat(AT_FDCWD, path, ts, 0); });
}

void mtime_moved(Ctx& c, const char* path) {
    struct stat st {};
    int rc = ::stat(path, &st);
    c.note(std::string("mtime_moved(") + path + ") = " +
           (rc != 0 ? "error" : (st.st_mtim.tv_sec != kOld.tv_sec || st.st_mtim.tv_nsec != kOld.tv_nsec) ? "yes" : "no"));
}

// 200 KiB of a fixed pattern: more than one FUSE page run, not page aligned.
std::string pattern(size_t n) {
    std::string s(n, '\0');
    for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + (i * 7 + i / 4096) % 26);
    return s;
}

}  // namespace

void seq_files(Ctx& c) {
    c.section("files");
    {
        auto fd = c.open("open(f1,CREAT|EXCL|WRONLY,0644)",
                         [] { return ::open("f1", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644); });
        c.call("write(f1,\"hello world\")", [&] { return ::write(fd.get(), "hello world", 11); });
        c.call("read(f1 wronly)", [&] {
            char b[4];
            return ::read(fd.get(), b, sizeof b);
        });
        c.call("close(f1)", [&] { return ::close(fd.release()); });
    }
    c.stat("f1");
    c.content("f1");
    c.open("open(f1,CREAT|EXCL|WRONLY)", [] { return ::open("f1", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600); });
    {
        // O_CREAT on an existing file opens it and keeps its mode.
        auto fd = c.open("open(f1,CREAT|WRONLY,0600)", [] { return ::open("f1", O_CREAT | O_WRONLY | O_CLOEXEC, 0600); });
        c.fstat("f1", fd.get());
    }
    {
        auto fd = c.open("open(f1,WRONLY|APPEND)", [] { return ::open("f1", O_WRONLY | O_APPEND | O_CLOEXEC); });
        c.call("lseek(f1,0,SET)", [&] { return ::lseek(fd.get(), 0, SEEK_SET); });
        c.call("write(f1,\"!!\")", [&] { return ::write(fd.get(), "!!", 2); });
        c.call("lseek(f1,0,CUR)", [&] { return ::lseek(fd.get(), 0, SEEK_CUR); });
        c.call("pwrite(f1,\"??\",@0)", [&] { return ::pwrite(fd.get(), "??", 2, 0); });  // appends on Linux
        c.fstat("f1", fd.get());
    }
    c.content("f1");
    set_old_mtime(c, "f1");
    {
        auto fd = c.open("open(f1,WRONLY|TRUNC)", [] { return ::open("f1", O_WRONLY | O_TRUNC | O_CLOEXEC); });
        c.fstat("f1", fd.get());
    }
    mtime_moved(c, "f1");
    c.stat("f1", {.blocks = true});
    {
        auto fd = c.open("open(f1,RDWR)", [] { return ::open("f1", O_RDWR | O_CLOEXEC); });
        c.call("write(f1,\"0123456789\")", [&] { return ::write(fd.get(), "0123456789", 10); });
        c.call("pwrite(f1,\"x\",@100)", [&] { return ::pwrite(fd.get(), "x", 1, 100); });
        c.fstat("f1", fd.get());
        c.pread("f1", fd.get(), 10, 50);
        c.pread("f1", fd.get(), 200, 95);
        c.call("ftruncate(f1,4)", [&] { return ::ftruncate(fd.get(), 4); });
        c.fstat("f1", fd.get());
        c.pread("f1", fd.get(), 100, 0);
        c.call("ftruncate(f1,8192)", [&] { return ::ftruncate(fd.get(), 8192); });
        c.fstat("f1", fd.get());
        c.pread("f1", fd.get(), 8192, 0);
        c.call("lseek(f1,0,END)", [&] { return ::lseek(fd.get(), 0, SEEK_END); });
        c.call("ftruncate(f1,-1)", [&] { return ::ftruncate(fd.get(), -1); });
    }
    set_old_mtime(c, "f1");
    c.call("truncate(f1,3)", [] { return ::truncate("f1", 3); });
    mtime_moved(c, "f1");
    c.content("f1");
    c.call("truncate(f1,70000)", [] { return ::truncate("f1", 70000); });
    c.stat("f1");
    c.call("truncate(f1,0)", [] { return ::truncate("f1", 0); });
    c.stat("f1", {.blocks = true});
    c.call("truncate(nonexistent,1)", [] { return ::truncate("nonexistent", 1); });
    c.call("mkdir(fdir,0755)", [] { return ::mkdir("fdir", 0755); });
    c.call("truncate(fdir,1)", [] { return ::truncate("fdir", 1); });
    c.open("open(fdir,WRONLY)", [] { return ::open("fdir", O_WRONLY | O_CLOEXEC); });
    c.open("open(fdir,RDONLY|DIRECTORY)", [] { return ::open("fdir", O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
    c.open("open(f1,RDONLY|DIRECTORY)", [] { return ::open("f1", O_RDONLY | O_DIRECTORY | O_CLOEXEC); });
    c.open("open(nodir/x,CREAT)", [] { return ::open("nodir/x", O_CREAT | O_WRONLY | O_CLOEXEC, 0644); });
    c.open("open(f1/x,RDONLY)", [] { return ::open("f1/x", O_RDONLY | O_CLOEXEC); });
    {
        auto fd = c.open("open(f1,RDONLY)", [] { return ::open("f1", O_RDONLY | O_CLOEXEC); });
        c.call("write(f1 rdonly)", [&] { return ::write(fd.get(), "x", 1); });
        c.call("ftruncate(f1 rdonly,1)", [&] { return ::ftruncate(fd.get(), 1); });
    }
    // A bigger file: several FUSE requests each way, not page aligned.
    std::string big = pattern(200 * 1024 + 123);
    make_file(c, "big", big);
    c.stat("big", {.blocks = true});
    c.content("big");
    {
        auto fd = c.open("open(big,RDONLY)", [] { return ::open("big", O_RDONLY | O_CLOEXEC); });
        c.pread("big", fd.get(), 10000, 4090);
        c.pread("big", fd.get(), 4096, 200 * 1024);
        c.pread("big", fd.get(), 10, 300 * 1024);
        auto out = c.open("open(bigcopy,CREAT|EXCL|RDWR)",
                          [] { return ::open("bigcopy", O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0644); });
        c.call("copy_file_range(big@1000->bigcopy@10,100000)", [&] {
            loff_t in = 1000, o = 10;
            return ::copy_file_range(fd.get(), &in, out.get(), &o, 100000, 0);
        });
        c.fstat("bigcopy", out.get());
        c.pread("bigcopy", out.get(), 100010, 0);
        c.call("fsync(bigcopy)", [&] { return ::fsync(out.get()); });
        c.call("fdatasync(bigcopy)", [&] { return ::fdatasync(out.get()); });
    }
}

void seq_rename(Ctx& c) {
    c.section("rename");
    make_file(c, "r1", "one");
    make_file(c, "r2", "two");
    ino_t r1 = c.ino_of("r1");
    {
        // A descriptor on the file that the rename replaces: it keeps the data, loses the name.
        auto victim = c.open("open(r2,RDONLY)", [] { return ::open("r2", O_RDONLY | O_CLOEXEC); });
        c.call("rename(r1,r2)", [] { return ::rename("r1", "r2"); });
        c.fstat("r2 replaced", victim.get());
        c.pread("r2 replaced", victim.get(), 10, 0);
    }
    c.ino_is("r2", r1, "old r1");
    c.content("r2");
    c.lstat("r1");
    c.call("mkdir(rd1)", [] { return ::mkdir("rd1", 0755); });
    c.call("mkdir(rd2)", [] { return ::mkdir("rd2", 0755); });
    make_file(c, "rd1/inner", "in");
    c.call("rename(rd1,rd2) over empty dir", [] { return ::rename("rd1", "rd2"); });
    c.listing("rd2");
    c.stat("rd2");
    c.call("mkdir(rd3)", [] { return ::mkdir("rd3", 0755); });
    make_file(c, "rd3/x", "x");
    c.call("rename(rd2,rd3) over non-empty dir", [] { return ::rename("rd2", "rd3"); });
    c.call("rename(r2,rd3) file over dir", [] { return ::rename("r2", "rd3"); });
    c.call("rename(rd3,r2) dir over file", [] { return ::rename("rd3", "r2"); });
    c.call("rename(rd3,rd3/sub) into itself", [] { return ::rename("rd3", "rd3/sub"); });
    c.call("rename(nonexistent,r9)", [] { return ::rename("nonexistent", "r9"); });
    c.call("rename(r2,r2)", [] { return ::rename("r2", "r2"); });
    c.call("rename(rd2/inner,rinner) across dirs", [] { return ::rename("rd2/inner", "rinner"); });
    c.listing("rd2");
    c.call("rename(rinner,nodir/x)", [] { return ::rename("rinner", "nodir/x"); });
    c.call("renameat2(r2,rnew,NOREPLACE)",
           [] { return ::renameat2(AT_FDCWD, "r2", AT_FDCWD, "rnew", RENAME_NOREPLACE); });
    make_file(c, "r3", "three");
    c.call("renameat2(rnew,r3,NOREPLACE)",
           [] { return ::renameat2(AT_FDCWD, "rnew", AT_FDCWD, "r3", RENAME_NOREPLACE); });
    ino_t rnew = c.ino_of("rnew"), r3 = c.ino_of("r3");
    c.call("renameat2(rnew,r3,EXCHANGE)", [] { return ::renameat2(AT_FDCWD, "rnew", AT_FDCWD, "r3", RENAME_EXCHANGE); });
    c.content("rnew");
    c.content("r3");
    c.ino_is("rnew", r3, "old r3");
    c.ino_is("r3", rnew, "old rnew");
    c.call("renameat2(rnew,nonexistent,EXCHANGE)",
           [] { return ::renameat2(AT_FDCWD, "rnew", AT_FDCWD, "nonexistent", RENAME_EXCHANGE); });
    c.call("renameat2(rnew,rd3,EXCHANGE) file<->dir",
           [] { return ::renameat2(AT_FDCWD, "rnew", AT_FDCWD, "rd3", RENAME_EXCHANGE); });
    c.lstat("rnew");
    c.lstat("rd3");
    c.call("renameat2(r3,rx,NOREPLACE|EXCHANGE)",
           [] { return ::renameat2(AT_FDCWD, "r3", AT_FDCWD, "rx", RENAME_NOREPLACE | RENAME_EXCHANGE); });
    // Two names of one inode: rename(2) does nothing and both names stay.
    make_file(c, "ra", "a");
    c.call("link(ra,rb)", [] { return ::link("ra", "rb"); });
    c.call("rename(ra,rb) same inode", [] { return ::rename("ra", "rb"); });
    c.lstat("ra");
    c.lstat("rb");
    c.listing(".");
}

void seq_links(Ctx& c) {
    c.section("links");
    make_file(c, "l1", "link");
    c.call("link(l1,l2)", [] { return ::link("l1", "l2"); });
    c.stat("l1");
    c.stat("l2");
    c.same_ino("l1", "l2");
    c.call("link(l1,l2) again", [] { return ::link("l1", "l2"); });
    c.call("link(fdir,ldir)", [] { return ::link("fdir", "ldir"); });
    c.call("link(nonexistent,l9)", [] { return ::link("nonexistent", "l9"); });
    c.call("link(l1,fdir/l3)", [] { return ::link("l1", "fdir/l3"); });
    c.stat("l2");
    c.call("unlink(l1)", [] { return ::unlink("l1"); });
    c.stat("l2");
    c.stat("fdir/l3");
    c.content("l2");
    // A symlink can be hard-linked itself (linkat without AT_SYMLINK_FOLLOW).
    c.call("symlink(l2,ls)", [] { return ::symlink("l2", "ls"); });
    c.call("linkat(ls,lsh,0)", [] { return ::linkat(AT_FDCWD, "ls", AT_FDCWD, "lsh", 0); });
    c.lstat("lsh");
    c.call("linkat(ls,lsf,FOLLOW)", [] { return ::linkat(AT_FDCWD, "ls", AT_FDCWD, "lsf", AT_SYMLINK_FOLLOW); });
    c.lstat("lsf");
    c.same_ino("lsf", "l2");
    {
        // The last name goes while the file is open: data stays, nlink drops to 0.
        auto fd = c.open("open(fdir/l3,RDWR)", [] { return ::open("fdir/l3", O_RDWR | O_CLOEXEC); });
        c.call("unlink(l2)", [] { return ::unlink("l2"); });
        c.call("unlink(lsf)", [] { return ::unlink("lsf"); });
        c.call("unlink(fdir/l3)", [] { return ::unlink("fdir/l3"); });
        c.fstat("fdir/l3 unlinked", fd.get());
        c.call("pwrite(fdir/l3 unlinked,\"more\",@4)", [&] { return ::pwrite(fd.get(), "more", 4, 4); });
        c.pread("fdir/l3 unlinked", fd.get(), 100, 0);
        c.fstat("fdir/l3 unlinked", fd.get());
    }
    c.call("unlink(l2) again", [] { return ::unlink("l2"); });
    c.lstat("ls");
    c.stat("ls");
}

void seq_symlinks(Ctx& c) {
    c.section("symlinks");
    c.call("symlink(target-file,sl1)", [] { return ::symlink("target-file", "sl1"); });
    {
        char buf[256];
        ssize_t n = c.call("readlink(sl1)", [&] { return ::readlink("sl1", buf, sizeof buf); });
        c.note("readlink(sl1).text = " + (n >= 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("-")));
        n = c.call("readlink(sl1,bufsize 4)", [&] { return ::readlink("sl1", buf, 4); });
        c.note("readlink(sl1,4).text = " + (n >= 0 ? std::string(buf, static_cast<size_t>(n)) : std::string("-")));
    }
    c.lstat("sl1");
    c.stat("sl1");
    c.open("open(sl1,RDONLY) dangling", [] { return ::open("sl1", O_RDONLY | O_CLOEXEC); });
    {
        // O_CREAT through a dangling symlink creates its target.
        auto fd = c.open("open(sl1,CREAT|WRONLY)", [] { return ::open("sl1", O_CREAT | O_WRONLY | O_CLOEXEC, 0640); });
        c.call("write(sl1,\"via link\")", [&] { return ::write(fd.get(), "via link", 8); });
    }
    c.stat("sl1");
    c.lstat("target-file");
    c.open("open(sl1,RDONLY|NOFOLLOW)", [] { return ::open("sl1", O_RDONLY | O_NOFOLLOW | O_CLOEXEC); });
    c.open("open(sl1,CREAT|EXCL)", [] { return ::open("sl1", O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644); });
    {
        auto fd = c.open("open(sl1,PATH|NOFOLLOW)", [] { return ::open("sl1", O_PATH | O_NOFOLLOW | O_CLOEXEC); });
        c.fstat("sl1 O_PATH", fd.get());
    }
    c.call("readlink(target-file)", [] {
        char b[16];
        return ::readlink("target-file", b, sizeof b);
    });
    c.call("symlink(rd3,sld)", [] { return ::symlink("rd3", "sld"); });
    c.stat("sld");
    c.listing("sld/");
    c.call("unlink(sld/)", [] { return ::unlink("sld/"); });
    c.call("rmdir(sld)", [] { return ::rmdir("sld"); });
    std::string longtarget(4000, 'L');
    for (size_t i = 100; i < longtarget.size(); i += 100) longtarget[i] = '/';
    c.call("symlink(4000 chars,sllong)", [&] { return ::symlink(longtarget.c_str(), "sllong"); });
    c.lstat("sllong");
    {
        std::string buf(5000, '\0');
        ssize_t n = c.call("readlink(sllong)", [&] { return ::readlink("sllong", buf.data(), buf.size()); });
        c.note("readlink(sllong).same = " + std::string(n >= 0 && buf.substr(0, static_cast<size_t>(n)) == longtarget ? "yes" : "no"));
    }
    std::string toolong(4096, 'T');
    c.call("symlink(4096 chars,sltoolong)", [&] { return ::symlink(toolong.c_str(), "sltoolong"); });
    c.call("symlink(\"\",slempty)", [] { return ::symlink("", "slempty"); });
    c.call("symlink(x,sl1) exists", [] { return ::symlink("x", "sl1"); });
    c.call("symlink(loop2,loop1)", [] { return ::symlink("loop2", "loop1"); });
    c.call("symlink(loop1,loop2)", [] { return ::symlink("loop1", "loop2"); });
    c.stat("loop1");
    c.open("open(loop1,CREAT)", [] { return ::open("loop1", O_CREAT | O_WRONLY | O_CLOEXEC, 0644); });
    c.call("symlink(/absolute/nowhere,slabs)", [] { return ::symlink("/absolute/nowhere", "slabs"); });
    c.lstat("slabs");
    c.call("lchown(sl1,1000,1000)", [] { return ::lchown("sl1", 1000, 1000); });
    c.lstat("sl1");
    c.stat("sl1");
    struct timespec ts[2] = {{1200000000, 111}, {1200000001, 222}};
    c.call("utimensat(sl1,NOFOLLOW)", [&] { return ::utimensat(AT_FDCWD, "sl1", ts, AT_SYMLINK_NOFOLLOW); });
    c.lstat("sl1", {.mtime = true, .atime = true});
    c.call("fchmodat(sl1,0600,NOFOLLOW)", [] { return ::fchmodat(AT_FDCWD, "sl1", 0600, AT_SYMLINK_NOFOLLOW); });
    c.call("chmod(sl1,0600) follows", [] { return ::chmod("sl1", 0600); });
    c.lstat("sl1");
    c.stat("sl1");
}

}  // namespace fsconform
