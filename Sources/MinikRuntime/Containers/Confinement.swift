// What a container's processes may do, as Docker's default: a capability bounding set
// (Docker's 14, plus add, minus drop), no_new_privs, and a seccomp filter. The filter
// follows Docker's default profile where it matters for escapes: mounts, namespaces,
// kernel modules, kexec, BPF, keyrings, clocks... fail with EPERM; clone with a
// namespace flag fails with EPERM and clone3 with ENOSYS (a filter cannot read clone3's
// flags, which live in memory; the C library then falls back to clone). Without that a
// container could make a user namespace and hold every capability over a fresh network
// namespace, the kernel surface Docker closes. A container given CAP_SYS_ADMIN gets
// what Docker's profile allows with it (mount, unshare, setns, namespaced clone...);
// privileged lifts everything.
import CMinik
import Foundation
import MinikSpec

public struct Confinement: Sendable {
    /// Bit n set: capability n stays in the bounding set.
    public var capabilities: UInt64
    public var seccomp: Bool = true

    /// A container's own confinement; nil for a privileged one (no confinement). Without a
    /// devices cgroup (a host without the v1 devices controller) nothing would stop a
    /// device node made with CAP_MKNOD from being opened: there, CAP_MKNOD goes.
    public init?(_ c: ContainerSpec?) {
        if c?.privileged == true { return nil }
        capabilities = Capabilities.mask(add: c?.capabilitiesAdd ?? [], drop: c?.capabilitiesDrop ?? [])
        if !Cgroups.available("devices") { capabilities &= ~Self.mknodBit }
    }

    static let sysAdminBit = UInt64(1) << UInt64(Capabilities.names.firstIndex(of: "SYS_ADMIN")!)

    /// The seccomp filter for these capabilities (nil without seccomp).
    public var filter: UnsafePointer<sock_fprog>? {
        guard seccomp else { return nil }
        return UnsafePointer(capabilities & Self.sysAdminBit != 0 ? Self.sysAdminFilter : Self.defaultFilter)
    }

    /// A confinement whose filter could not be built must not run anything: no filter
    /// would mean no mount, unshare or clone denials at all.
    public var isComplete: Bool { !seccomp || filter != nil }

    static let mknodBit = UInt64(1) << UInt64(Capabilities.names.firstIndex(of: "MKNOD")!)


    /// Syscalls a container may not make (EPERM), in the spirit of Docker's default
    /// profile: mounts, namespaces, kernel modules, kexec, reboot, BPF, keyrings, clock,
    /// swap, accounting, raw I/O ports, perf and userfaultfd.
    public static let deniedSyscalls = [
        "mount", "umount", "umount2", "pivot_root", "move_mount", "open_tree", "fsopen", "fsconfig", "fsmount",
        "fspick", "mount_setattr", "unshare", "setns", "kexec_load", "kexec_file_load", "init_module",
        "finit_module", "delete_module", "create_module", "reboot", "bpf", "add_key", "request_key", "keyctl",
        "clock_settime", "clock_adjtime", "settimeofday", "adjtimex", "stime", "swapon", "swapoff", "acct",
        "iopl", "ioperm", "perf_event_open", "userfaultfd", "open_by_handle_at", "name_to_handle_at",
        "lookup_dcookie", "quotactl", "nfsservctl", "uselib", "ustat", "sysfs", "_sysctl", "vm86", "vm86old",
        "get_kernel_syms", "query_module", "syslog",
        // io_uring's operations bypass seccomp altogether (Docker denies it since 25.0).
        "io_uring_setup", "io_uring_enter", "io_uring_register",
    ]

    /// What Docker's profile allows a container that has CAP_SYS_ADMIN (besides clone and
    /// clone3 with any flags).
    public static let sysAdminAllowed: Set<String> = [
        "bpf", "fsconfig", "fsmount", "fsopen", "fspick", "lookup_dcookie", "mount", "mount_setattr", "move_mount",
        "name_to_handle_at", "open_tree", "perf_event_open", "quotactl", "setns", "syslog", "umount", "umount2", "unshare",
    ]

    /// Built once each; CMinik's children only read them.
    nonisolated(unsafe) static let defaultFilter = build(deniedSyscalls, restrictClone: true)
    nonisolated(unsafe) static let sysAdminFilter = build(deniedSyscalls.filter { !sysAdminAllowed.contains($0) }, restrictClone: false)

    static func build(_ denied: [String], restrictClone: Bool) -> UnsafeMutablePointer<sock_fprog>? {
        let prog = UnsafeMutablePointer<sock_fprog>.allocate(capacity: 1)
        let names = denied.map { strdup($0) }
        defer { names.forEach { free($0) } }
        let rc = names.map { UnsafePointer($0) }.withUnsafeBufferPointer { buf in
            minik_seccomp_build(buf.baseAddress, Int32(buf.count), EPERM, restrictClone ? 1 : 0, prog)
        }
        return rc == 0 ? prog : nil
    }
}
