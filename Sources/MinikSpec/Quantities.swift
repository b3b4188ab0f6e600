// Kubernetes resource quantities and Linux capability names: parsing and validation. Pure.

public enum Quantity {
    /// "64Mi", "1Gi", "500M", "1e3", "1000000" -> bytes; nil when invalid.
    public static func bytes(_ text: String) -> Int64? {
        let suffixes: [(String, Double)] = [
            ("Ki", 1024), ("Mi", 1_048_576), ("Gi", 1_073_741_824), ("Ti", 1_099_511_627_776),
            ("k", 1e3), ("M", 1e6), ("G", 1e9), ("T", 1e12),
        ]
        for (s, m) in suffixes where text.hasSuffix(s) {
            guard let v = Double(text.dropLast(s.count)), v >= 0, !text.dropLast(s.count).isEmpty else { return nil }
            return Int64(v * m)
        }
        guard let v = Double(text), v >= 0, text.first?.isNumber == true else { return nil }
        return Int64(v)
    }

    /// "500m", "1", "0.5" -> millicores.
    public static func milliCPU(_ text: String) -> Int64? {
        if text.hasSuffix("m") {
            guard let v = Int64(text.dropLast()), v >= 0 else { return nil }
            return v
        }
        guard let v = Double(text), v >= 0, text.first?.isNumber == true else { return nil }
        return Int64(v * 1000)
    }
}

public enum Capabilities {
    /// Linux capabilities by number (include/uapi/linux/capability.h), without "CAP_".
    public static let names = [
        "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
        "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
        "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
        "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
        "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
        "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
    ]

    /// Docker's default set (what a container gets unless it adds or drops).
    public static let dockerDefault = [
        "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID", "SETUID", "SETFCAP",
        "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL", "AUDIT_WRITE",
    ]

    /// "NET_ADMIN", "CAP_NET_ADMIN", "net_admin" -> "NET_ADMIN"; "ALL" stays; nil if unknown.
    public static func normalize(_ name: String) -> String? {
        var n = name.uppercased()
        if n.hasPrefix("CAP_") { n.removeFirst(4) }
        return n == "ALL" || names.contains(n) ? n : nil
    }

    /// The bounding set for a container: Docker's default, plus add, minus drop.
    public static func mask(add: [String], drop: [String]) -> UInt64 {
        func bits(_ list: [String]) -> UInt64 {
            list.reduce(0) { m, n in
                if n == "ALL" { return UInt64.max }
                guard let i = names.firstIndex(of: n) else { return m }
                return m | (1 << UInt64(i))
            }
        }
        return (bits(dockerDefault) | bits(add)) & ~bits(drop)
    }
}
