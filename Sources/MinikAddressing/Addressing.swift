// IPv4 addresses and prefixes, the value types every layer of minik speaks.
// Pure: parsing, containment, overlap and carving a subnet into per-node blocks.

/// An IPv4 address in host byte order.
public struct IPv4Address: Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    public init(_ a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8) {
        value = UInt32(a) << 24 | UInt32(b) << 16 | UInt32(c) << 8 | UInt32(d)
    }

    /// Parses dotted-quad notation ("10.244.1.2"); nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var v: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let octet = UInt8(part) else { return nil }
            if part.count > 1 && part.first == "0" { return nil } // no octal look-alikes
            v = v << 8 | UInt32(octet)
        }
        value = v
    }

    public var octets: [UInt8] {
        [UInt8(value >> 24), UInt8(value >> 16 & 0xff), UInt8(value >> 8 & 0xff), UInt8(value & 0xff)]
    }

    /// The address in network byte order, as the kernel's in_addr wants it.
    public var networkOrder: UInt32 { value.bigEndian }

    public var description: String { octets.map(String.init).joined(separator: ".") }

    public static func < (a: IPv4Address, b: IPv4Address) -> Bool { a.value < b.value }

    public func adding(_ n: UInt32) -> IPv4Address { IPv4Address(value &+ n) }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let a = IPv4Address(text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "bad IPv4 address \(text)"))
        }
        self = a
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}

/// An IPv4 prefix such as 10.244.0.0/16. The address is always the network address.
public struct IPv4CIDR: Hashable, Sendable, CustomStringConvertible, Codable {
    public let network: IPv4Address
    public let prefix: Int

    public enum ParseError: Error, Equatable, CustomStringConvertible {
        case syntax(String)
        case hostBitsSet(String, suggestion: String)

        public var description: String {
            switch self {
            case .syntax(let t): return "\"\(t)\" is not an IPv4 CIDR (expected a.b.c.d/n, n from 0 to 32)"
            case .hostBitsSet(let t, let s): return "\"\(t)\" has host bits set (did you mean \(s)?)"
            }
        }
    }

    public init(network: IPv4Address, prefix: Int) {
        precondition((0...32).contains(prefix), "prefix out of range")
        self.prefix = prefix
        self.network = IPv4Address(network.value & IPv4CIDR.mask(prefix))
    }

    /// Parses "a.b.c.d/n". The address must be the network address of the prefix.
    public static func parse(_ text: String) throws(ParseError) -> IPv4CIDR {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let addr = IPv4Address(String(parts[0])),
              parts[1].allSatisfy({ $0.isASCII && $0.isNumber }), let p = Int(parts[1]),
              (0...32).contains(p), parts[1].count <= 2 else {
            throw .syntax(text)
        }
        let cidr = IPv4CIDR(network: addr, prefix: p)
        if cidr.network != addr { throw .hostBitsSet(text, suggestion: cidr.description) }
        return cidr
    }

    public static func mask(_ prefix: Int) -> UInt32 {
        prefix == 0 ? 0 : UInt32.max << UInt32(32 - prefix)
    }

    public var mask: UInt32 { IPv4CIDR.mask(prefix) }
    public var size: UInt64 { UInt64(1) << UInt64(32 - prefix) }
    public var broadcast: IPv4Address { IPv4Address(network.value | ~mask) }
    public var description: String { "\(network)/\(prefix)" }

    public func contains(_ a: IPv4Address) -> Bool { a.value & mask == network.value }

    public func overlaps(_ other: IPv4CIDR) -> Bool {
        contains(other.network) || other.contains(network)
    }

    /// The n-th address inside the prefix (0 is the network address).
    public func address(_ n: UInt32) -> IPv4Address { network.adding(n) }

    /// The index-th subnet of the given (longer) prefix, or nil when it does not fit.
    public func subnet(_ index: Int, prefix sub: Int) -> IPv4CIDR? {
        guard sub >= prefix, sub <= 32, index >= 0 else { return nil }
        let count = UInt64(1) << UInt64(sub - prefix)
        guard UInt64(index) < count else { return nil }
        let step = UInt64(1) << UInt64(32 - sub)
        return IPv4CIDR(network: IPv4Address(network.value + UInt32(UInt64(index) * step)), prefix: sub)
    }

    /// How many subnets of the given prefix fit.
    public func subnetCount(prefix sub: Int) -> UInt64 {
        sub < prefix ? 0 : UInt64(1) << UInt64(sub - prefix)
    }

    public init(from decoder: Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        do { self = try IPv4CIDR.parse(text) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: error.description))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(description)
    }
}
