// SignalForwarder: the forwarded signals no longer kill the process; they come out of the fd.
#include <doctest/doctest.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <thread>

#include "vmm/signal_forwarder.h"

using krunlet::SignalForwarder;

TEST_CASE("forwarded signals are read from the fd, in any thread created afterwards, then unblocked again") {
    // In a child: the signals are process-directed and their default action is to terminate.
    pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
        int code = 0;
        {
            auto f = SignalForwarder::create();
            if (!f.ok()) ::_exit(10);
            // A thread started after create() inherits the mask: a signal it would otherwise
            // take with the default action (death) reaches the fd instead.
            std::thread t([] { ::usleep(20000); });
            for (int s : {SIGTERM, SIGUSR1, SIGHUP}) ::kill(::getpid(), s);
            t.join();
            pollfd p{f->fd(), POLLIN, 0};
            if (::poll(&p, 1, 1000) != 1) ::_exit(11);
            auto got = f->take();
            // Order among different standard signals is the kernel's (by number).
            if (got.size() != 3) code = 12;
            sigset_t now;
            ::pthread_sigmask(SIG_SETMASK, nullptr, &now);
            if (!sigismember(&now, SIGTERM)) code = 13;
            if (!f->take().empty()) code = 14;
        }
        sigset_t after;
        ::pthread_sigmask(SIG_SETMASK, nullptr, &after);
        if (sigismember(&after, SIGTERM)) code = 15;  // restored on destruction
        ::_exit(code);
    }
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    INFO("status " << status);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}
