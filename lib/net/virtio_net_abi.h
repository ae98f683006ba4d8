// <linux/virtio_net.h> for C++: the virtio-net wire header, feature bits and
// status bits (virtio 1.2 §5.1). The kernel header names a field of its
// control-queue struct `class`, a C++ keyword, so the word is renamed while
// it is read; nothing here uses that struct.
#pragma once

#define class class_
#include <linux/virtio_net.h>
#undef class
