/* The guest vmlinux, embedded read-only in libkrunlet-kernel.so.1 (DESIGN.md
 * §3: nothing on the host filesystem is reachable once crun runs the VMM).
 * Page alignment keeps the ELF image on its own pages of the file, so the
 * pages the loader maps are the page cache's, shared by every VM, and the VMM
 * may map them as they are. The data holds no relocations: the object is
 * position-independent. KRUNLET_KERNEL_PATH comes from lib/kernelfw/
 * CMakeLists.txt; without it the blob is empty and krunlet_kernel_blob()
 * reports that no kernel was built in. */

        .section .rodata.krunlet_kernel, "a", @progbits
        .balign 4096
        .globl  krunlet_kernel_start
        .hidden krunlet_kernel_start
        .type   krunlet_kernel_start, @object
krunlet_kernel_start:
#ifdef KRUNLET_KERNEL_PATH
        .incbin KRUNLET_KERNEL_PATH
#endif
        .globl  krunlet_kernel_end
        .hidden krunlet_kernel_end
        .type   krunlet_kernel_end, @object
krunlet_kernel_end:
        .size   krunlet_kernel_start, krunlet_kernel_end - krunlet_kernel_start
        /* The end is page-aligned too: no other data shares the last page. */
        .balign 4096

        .section .note.GNU-stack, "", @progbits
