#include "vmm/control_channel.h"

#include <nlohmann/json.hpp>

namespace krunlet {

ControlChannel::ControlChannel(Workload workload, bool tty, OnExit on_exit)
    : workload_(std::move(workload)), tty_(tty), on_exit_(std::move(on_exit)) {}

std::string ControlChannel::exec_message() const {
    nlohmann::json msg = {{"type", "exec"}, {"tty", tty_}};
    if (!workload_.args.empty()) msg["args"] = workload_.args;
    if (!workload_.env.empty()) msg["env"] = workload_.env;
    if (!workload_.workdir.empty()) msg["workdir"] = workload_.workdir;
    if (!workload_.rlimits.empty()) msg["rlimits"] = workload_.rlimits;
    // Only when there are volumes: an init that predates "mounts" never sees it.
    for (const VolumeMount& m : workload_.mounts)
        msg["mounts"].push_back({{"tag", m.tag}, {"path", m.guest_path}, {"read_only", m.read_only}});
    if (net_ && net_->enabled) {
        msg["net"] = {{"address", net_->guest_address},
                      {"prefix", net_->guest_prefix},
                      {"gateway", net_->gateway},
                      {"dns", net_->dns}};
        if (on_listener_) msg["mirror_ports"] = true;
    }
    // Strings came from the C API and may hold invalid UTF-8; replace rather
    // than throw.
    return msg.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void ControlChannel::set_network(const NetConfig& net, OnListener on_listener) {
    net_ = net;
    on_listener_ = std::move(on_listener);
}

void ControlChannel::on_connect(Send send) {
    send_ = std::move(send);
    std::string framed = control::frame(exec_message());
    send_(std::span(reinterpret_cast<const uint8_t*>(framed.data()), framed.size()));
}

void ControlChannel::on_data(std::span<const uint8_t> bytes) {
    decoder_.feed(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
    while (auto msg = decoder_.next()) {
        // guest-controlled: parse without exceptions and check every type.
        auto j = nlohmann::json::parse(*msg, nullptr, false);
        if (j.is_discarded() || !j.is_object()) continue;
        auto type = j.find("type");
        if (type == j.end() || !type->is_string()) continue;
        if (*type == "exit") {
            auto code = j.find("code");
            if (code == j.end() || !code->is_number_integer()) continue;
            // Range-check in 64 bits before narrowing: 2^32 must not become 0.
            int c = kExitVmmError;
            if (code->is_number_unsigned()) {
                if (code->get<uint64_t>() <= 255) c = static_cast<int>(code->get<uint64_t>());
            } else if (int64_t v = code->get<int64_t>(); v >= 0 && v <= 255) {
                c = static_cast<int>(v);
            }
            if (!exit_code_) {
                exit_code_ = c;
                if (on_exit_) on_exit_(c);
            }
        } else if ((*type == "listen" || *type == "unlisten") && on_listener_) {
            // guest-controlled: a port in range, and for "listen" a dotted quad.
            auto port = j.find("port");
            if (port == j.end() || !port->is_number_unsigned()) continue;
            uint64_t p = port->get<uint64_t>();
            if (p == 0 || p > 65535) continue;
            ListenerEvent ev{static_cast<uint16_t>(p), {}};
            if (*type == "listen") {
                auto addr = j.find("addr");
                if (addr == j.end() || !addr->is_string()) continue;
                ev.addr = addr->get<std::string>();
                if (!control::is_dotted_quad(ev.addr)) continue;
            }
            on_listener_(ev);
        }
    }
}

void ControlChannel::on_close() { send_ = nullptr; }

bool ControlChannel::send_signal(int signo) {
    if (!send_) return false;
    std::string framed = control::frame(nlohmann::json({{"type", "signal"}, {"signo", signo}}).dump());
    return send_(std::span(reinterpret_cast<const uint8_t*>(framed.data()), framed.size()));
}

}  // namespace krunlet
