/* The static krunlet-init binary, embedded read-only in the library that
 * links this object (DESIGN.md §3: nothing on the host filesystem is reachable
 * once the VM is set up). The VMM's virtio-fs server serves these bytes as
 * /init.krun. Page alignment lets the VMM map or share the pages as they are.
 *
 * The data holds no relocations, so the object is position-independent and
 * links into a shared library. The symbols are hidden: they are the library's
 * own, not part of its ABI. KRUNLET_INIT_PATH is set by init/CMakeLists.txt. */

        .section .rodata.krunlet_init, "a", @progbits
        .balign 4096
        .globl  krunlet_init_start
        .hidden krunlet_init_start
        .type   krunlet_init_start, @object
krunlet_init_start:
        .incbin KRUNLET_INIT_PATH
        .globl  krunlet_init_end
        .hidden krunlet_init_end
        .type   krunlet_init_end, @object
krunlet_init_end:
        .size   krunlet_init_start, krunlet_init_end - krunlet_init_start

/* No executable stack for whoever links this. */
        .section .note.GNU-stack, "", @progbits
