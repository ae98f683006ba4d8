// The resolver rule of init/network.h: which resolv.conf the guest can use as it is.
#include <doctest/doctest.h>

#include "init/network.h"

using krunlet::init::resolv_conf_usable;

TEST_CASE("resolv.conf: a non-loopback nameserver is usable; loopback-only, empty or garbled is not") {
    CHECK(resolv_conf_usable("nameserver 1.1.1.1\n"));
    CHECK(resolv_conf_usable("# podman's\nsearch dns.podman\nnameserver 10.88.0.1\noptions ndots:0\n"));
    CHECK(resolv_conf_usable("nameserver 127.0.0.53\n  nameserver\t192.168.1.1 # home\n"));
    CHECK(resolv_conf_usable("nameserver fd00::1"));  // no final newline
    CHECK_FALSE(resolv_conf_usable(""));
    CHECK_FALSE(resolv_conf_usable("nameserver 127.0.0.53\noptions edns0 trust-ad\n"));  // systemd-resolved
    CHECK_FALSE(resolv_conf_usable("nameserver ::1\n"));
    CHECK_FALSE(resolv_conf_usable("# nameserver 8.8.8.8\n"));
    CHECK_FALSE(resolv_conf_usable("nameservers 8.8.8.8\n"));
    CHECK_FALSE(resolv_conf_usable("nameserver\n"));
    CHECK_FALSE(resolv_conf_usable("search example.com\n"));
}

TEST_CASE("prefix lengths become dotted netmasks") {
    using krunlet::init::prefix_netmask;
    CHECK(prefix_netmask(24) == "255.255.255.0");
    CHECK(prefix_netmask(16) == "255.255.0.0");
    CHECK(prefix_netmask(20) == "255.255.240.0");
    CHECK(prefix_netmask(32) == "255.255.255.255");
    CHECK(prefix_netmask(1) == "128.0.0.0");
    CHECK(prefix_netmask(0) == "0.0.0.0");
}
