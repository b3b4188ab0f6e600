// Kubernetes resource quantities and Linux capability names: parsing and validation. Pure.

/// A Kubernetes resource quantity, parsed by apimachinery's grammar (resource.Quantity):
///
///     quantity  ::= sign? number suffix
///     number    ::= digits | digits "." digits? | "." digits
///     suffix    ::= "" | binarySI | decimalSI | ("e" | "E") sign? digits
///     binarySI  ::= Ki | Mi | Gi | Ti | Pi | Ei                    (powers of 1024)
///     decimalSI ::= n | u | m | k | M | G | T | P | E              (10^-9 ... 10^18)
///
/// The value is kept exactly (its digits and exponents, never a Double), so "1e300" or
/// "99999999Ti" is a value too large for an Int64 rather than a trap. Kubernetes caps such
/// values at 2^63-1 silently; minik says they are too large. Kubernetes' scanner also
/// lets a lone sign or '.' through as zero; minik wants a digit. Like Kubernetes it rounds a fraction of the
/// unit up ("0.5" bytes is 1 byte, "0.1m" cpu is 1 millicore): asking for some of a
/// resource never gives none.
public struct Quantity: Sendable, Equatable {
    /// Below zero (Kubernetes accepts the sign; resource values must not be negative).
    public var isNegative: Bool
    /// The significant digits (0-9), without leading zeros; empty for zero.
    var digits: [UInt8]
    /// The value is digits x 10^exponent10 x 1024^exponent1024.
    var exponent10: Int
    var exponent1024: Int

    /// What a quantity looks like, for messages.
    public static let grammar = "a number with an optional sign, decimal point and suffix: Ki, Mi, Gi, Ti, Pi, Ei, n, u, m, k, M, G, T, P, E or an exponent like e3 (e.g. 64Mi, 1Gi, 500m, 0.5, 1e3)"

    static let binarySuffixes: [String: Int] = ["Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6]
    static let decimalSuffixes: [String: Int] = ["n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18]
    /// Exponents are saturated here: 10^1000000 is as out of range as anything larger.
    static let exponentBound = 1_000_000

    /// nil when `text` does not follow the grammar (an empty string, "1e", "1.5.2",
    /// "NaN", ".inf", "12x", " 1", "1 Gi").
    public init?(_ text: String) {
        let u = Array(text.utf8)
        var i = 0
        var negative = false
        if i < u.count, u[i] == UInt8(ascii: "+") || u[i] == UInt8(ascii: "-") {
            negative = u[i] == UInt8(ascii: "-")
            i += 1
        }
        var mantissa: [UInt8] = []
        var fractionDigits = 0
        var sawDigit = false
        while i < u.count, Quantity.isDigit(u[i]) {
            mantissa.append(u[i] - 48)
            sawDigit = true
            i += 1
        }
        if i < u.count, u[i] == UInt8(ascii: ".") {
            i += 1
            while i < u.count, Quantity.isDigit(u[i]) {
                mantissa.append(u[i] - 48)
                fractionDigits += 1
                sawDigit = true
                i += 1
            }
        }
        guard sawDigit, let (e10, e1024) = Quantity.suffix(u[i...]) else { return nil }
        let significant = Array(mantissa.drop { $0 == 0 })
        isNegative = negative && !significant.isEmpty
        digits = significant
        exponent10 = e10 - fractionDigits
        exponent1024 = e1024
    }

    static func isDigit(_ c: UInt8) -> Bool { c >= 48 && c <= 57 }

    /// The powers of ten and of 1024 a suffix stands for; nil if it is not one.
    static func suffix(_ s: ArraySlice<UInt8>) -> (Int, Int)? {
        let text = String(decoding: s, as: UTF8.self)
        if let p = binarySuffixes[text] { return (0, p) }
        if let e = decimalSuffixes[text] { return (e, 0) }
        // "E" alone is exa; "e" or "E" followed by a signed integer is an exponent.
        guard let first = s.first, first == UInt8(ascii: "e") || first == UInt8(ascii: "E") else { return nil }
        var rest = s.dropFirst()
        var sign = 1
        if let c = rest.first, c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
            sign = c == UInt8(ascii: "-") ? -1 : 1
            rest = rest.dropFirst()
        }
        guard !rest.isEmpty, rest.allSatisfy(isDigit) else { return nil }
        var e = 0
        for c in rest { e = min(e * 10 + Int(c - 48), exponentBound) }
        return (sign * e, 0)
    }

    /// The magnitude times 10^scale (0: bytes, 3: millicores), a fraction rounded up;
    /// nil when it is above Int64.max.
    public func scaled(_ scale: Int) -> Int64? {
        guard !digits.isEmpty else { return 0 }
        var d = digits
        for _ in 0..<exponent1024 { d = Quantity.multiply(d, by: 1024) }
        let e = exponent10 + scale
        let integerCount = d.count + e
        // d has no leading zero: more than 19 integer digits is at least 10^19 > Int64.max.
        if integerCount > 19 { return nil }
        var value: UInt64 = 0
        for k in 0..<max(integerCount, 0) { value = value * 10 + UInt64(k < d.count ? d[k] : 0) }
        let fraction = d[min(max(integerCount, 0), d.count)...]
        if fraction.contains(where: { $0 != 0 }) { value += 1 }
        return value <= UInt64(Int64.max) ? Int64(value) : nil
    }

    /// Decimal digits (most significant first) times a small factor.
    static func multiply(_ d: [UInt8], by factor: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(d.count + 4)
        var carry = 0
        for digit in d.reversed() {
            let v = Int(digit) * factor + carry
            out.append(UInt8(v % 10))
            carry = v / 10
        }
        while carry > 0 {
            out.append(UInt8(carry % 10))
            carry /= 10
        }
        return out.reversed()
    }

    /// "64Mi", "1Gi", "500M", "1e3", "1000000" -> bytes; nil when invalid, negative or
    /// above Int64.max.
    public static func bytes(_ text: String) -> Int64? {
        guard let q = Quantity(text), !q.isNegative else { return nil }
        return q.scaled(0)
    }

    /// "500m", "1", "0.5" -> millicores; nil when invalid, negative or too large.
    public static func milliCPU(_ text: String) -> Int64? {
        guard let q = Quantity(text), !q.isNegative else { return nil }
        return q.scaled(3)
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
