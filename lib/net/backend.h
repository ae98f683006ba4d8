// The host side of a virtio-net device: where the guest's Ethernet frames go
// and where frames for the guest come from. The device (devices/net.h) knows
// only this interface, so the user-mode stack (net/slirp_backend.h) and a
// passt-style stream socket can be swapped without touching the device.
//
// Threads: every call in both directions happens on the VMM's event loop
// thread (or a vCPU thread in Device::activate/reset) with the device's
// transport mutex held, so neither side needs a lock. A backend may call
// FrameSink::receive() from inside send_to_host() (an ARP reply, say): the
// sink must accept that re-entry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/result.h"

namespace krunlet::net {

// The largest Ethernet frame either direction carries: a 64 KiB IP packet
// plus the Ethernet header, rounded up as passt and libkrun do. Anything
// bigger is dropped and counted, never truncated.
inline constexpr size_t kMaxFrameSize = 65550;
// The smallest frame that has an Ethernet header (dst, src, ethertype).
inline constexpr size_t kEthHeaderSize = 14;

// Where a backend delivers frames for the guest (the device implements it).
class FrameSink {
public:
    virtual ~FrameSink() = default;
    // One Ethernet frame, without any virtio header. The sink copies what it
    // keeps; `frame` is only valid during the call.
    virtual void receive(std::span<const uint8_t> frame) = 0;
    // False when receive() would drop the frame for lack of room (the guest
    // posts no receive buffers and the sink's backlog is full). A backend that
    // can hold frames back (a stream socket) stops reading while this is false
    // and resumes on NetBackend::sink_ready().
    virtual bool can_receive() const = 0;
};

class NetBackend {
public:
    virtual ~NetBackend() = default;
    // Where frames for the guest go; nullptr detaches (frames are dropped).
    virtual void set_sink(FrameSink* sink) = 0;
    // Start host-side I/O (register fds with the event loop). Called once,
    // when the device first goes live, because the DeviceEnv can only run
    // handlers after the transport is built; calling it again is a no-op.
    virtual Result<void> start() = 0;
    // One Ethernet frame from the guest (kEthHeaderSize..kMaxFrameSize bytes,
    // checked by the device). An error means this frame was lost; the device
    // counts it and the guest keeps running (its TCP retransmits).
    virtual Result<void> send_to_host(std::span<const uint8_t> frame) = 0;
    // The sink has room again after can_receive() returned false.
    virtual void sink_ready() {}
};

}  // namespace krunlet::net
