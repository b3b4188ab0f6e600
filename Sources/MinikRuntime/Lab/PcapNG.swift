// pcapng, the capture format Wireshark and tshark read natively: one section header, an
// interface description per captured interface (so one file holds several nodes' and
// pods' interfaces, each named), and an enhanced packet block per packet with its
// interface, a nanosecond timestamp and its direction. Pure: blocks are bytes.
// (The format: draft-ietf-opsawg-pcapng; little-endian here, as the byte-order magic says.)
public enum PcapNG {
    public static let linkTypeEthernet: UInt16 = 1

    /// The section header block, with a comment and the writing application.
    public static func sectionHeader(comment: String, application: String) -> [UInt8] {
        var body: [UInt8] = []
        body += le32(0x1A2B_3C4D)  // byte-order magic
        body += le16(1) + le16(0)  // version 1.0
        body += le64(UInt64.max)   // section length: not given
        body += option(1, Array(comment.utf8))      // shb_comment
        body += option(4, Array(application.utf8))  // shb_userappl
        body += endOfOptions
        return block(0x0A0D_0D0A, body)
    }

    /// An interface description block: Ethernet, its name and description, and
    /// timestamps in nanoseconds (if_tsresol 9).
    public static func interfaceDescription(name: String, description: String, snaplen: UInt32) -> [UInt8] {
        var body: [UInt8] = le16(linkTypeEthernet) + le16(0) + le32(snaplen)
        body += option(2, Array(name.utf8))         // if_name
        body += option(3, Array(description.utf8))  // if_description
        body += option(9, [9])                      // if_tsresol: 10^-9
        body += endOfOptions
        return block(1, body)
    }

    /// Appends an enhanced packet block for interface `interface` (its IDB's position)
    /// to `out`, without intermediate arrays (it runs once per packet).
    public static func appendEnhancedPacket(to out: inout [UInt8], interface: UInt32, timestampNs: UInt64,
                                            data: UnsafeRawBufferPointer, wireLength: UInt32, outgoing: Bool) {
        let padding = pad(data.count)
        let total = UInt32(12 + 20 + data.count + padding + 8 + 4)
        func put(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put(6)
        put(total)
        put(interface)
        put(UInt32(truncatingIfNeeded: timestampNs >> 32))
        put(UInt32(truncatingIfNeeded: timestampNs))
        put(UInt32(data.count))
        put(wireLength)
        out.append(contentsOf: data)
        if padding > 0 { out.append(contentsOf: repeatElement(0, count: padding)) }
        put(0x0004_0002)               // option epb_flags (2), 4 bytes:
        put(outgoing ? 2 : 1)          // direction 01 inbound, 10 outbound
        put(0)                         // end of options
        put(total)
    }

    static let endOfOptions: [UInt8] = [0, 0, 0, 0]

    static func block(_ type: UInt32, _ body: [UInt8]) -> [UInt8] {
        let total = UInt32(12 + body.count)
        return le32(type) + le32(total) + body + le32(total)
    }

    static func option(_ code: UInt16, _ value: [UInt8]) -> [UInt8] {
        le16(code) + le16(UInt16(value.count)) + value + [UInt8](repeating: 0, count: pad(value.count))
    }

    static func pad(_ n: Int) -> Int { (4 - n % 4) % 4 }
    static func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xff), UInt8(v >> 8)] }
    static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
    static func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
}
