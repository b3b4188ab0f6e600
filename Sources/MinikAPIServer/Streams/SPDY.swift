// SPDY/3.1 frames as kubectl's spdystream writes and reads them: the transport of
// port-forward (directly after an `Upgrade: SPDY/3.1`, or tunnelled in WebSocket) and of
// exec/attach for clients without WebSocket. Big-endian; a control frame is
// 0x8003 | type u16 | flags u8 | length u24 | body; a data frame is stream u32 |
// flags u8 | length u24 | payload. Header blocks are a u32 count of (u32 length, name,
// u32 length, value) pairs, zlib-compressed with the SPDY/3 dictionary in one stream per
// connection and direction (CSPDYZlib).
// spdystream has no flow control (it never sends WINDOW_UPDATE and ignores them), so
// none is enforced here either: backpressure is TCP's.
import CSPDYZlib
import Foundation
import NIOCore

enum SPDYFrame: Equatable {
    case synStream(id: UInt32, headers: [String: String], fin: Bool)
    case synReply(id: UInt32, headers: [String: String], fin: Bool)
    case rstStream(id: UInt32, status: UInt32)
    case settings
    case ping(id: UInt32)
    case goAway(lastGood: UInt32, status: UInt32)
    case headers(id: UInt32, headers: [String: String], fin: Bool)
    case windowUpdate(id: UInt32, delta: UInt32)
    case data(id: UInt32, fin: Bool, payload: ByteBuffer)

    static let finFlag: UInt8 = 0x01
    /// RST_STREAM statuses.
    static let protocolError: UInt32 = 1
    static let cancel: UInt32 = 5
}

struct SPDYError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// Reads and writes frames; keeps the connection's two header compression contexts.
final class SPDYFramer {
    /// Data frames kubectl sends are at most 32 KiB; anything far larger is refused.
    static let maxFrameLength = 1 << 20
    static let maxHeaderBlock = 64 * 1024
    private let inflater: OpaquePointer
    private let deflater: OpaquePointer

    init() {
        guard let i = minik_spdy_zlib_new(0), let d = minik_spdy_zlib_new(1) else { fatalError("zlib: out of memory") }
        inflater = i
        deflater = d
    }

    deinit {
        minik_spdy_zlib_free(inflater)
        minik_spdy_zlib_free(deflater)
    }

    /// The next whole frame in `buffer` (consumed), nil while it is incomplete.
    func decode(_ buffer: inout ByteBuffer) throws(SPDYError) -> SPDYFrame? {
        guard buffer.readableBytes >= 8, let first = buffer.getInteger(at: buffer.readerIndex, as: UInt32.self),
              let second = buffer.getInteger(at: buffer.readerIndex + 4, as: UInt32.self) else { return nil }
        let flags = UInt8(second >> 24), length = Int(second & 0xff_ffff)
        guard length <= Self.maxFrameLength else { throw SPDYError("a frame of \(length) bytes") }
        guard buffer.readableBytes >= 8 + length else { return nil }
        buffer.moveReaderIndex(forwardBy: 8)
        var body = buffer.readSlice(length: length)!
        if first & 0x8000_0000 == 0 {
            let id = first & 0x7fff_ffff
            guard id != 0 else { throw SPDYError("a data frame on stream 0") }
            return .data(id: id, fin: flags & SPDYFrame.finFlag != 0, payload: body)
        }
        let type = first & 0xffff
        let fin = flags & SPDYFrame.finFlag != 0
        func u32() throws(SPDYError) -> UInt32 {
            guard let v = body.readInteger(as: UInt32.self) else { throw SPDYError("a short control frame (type \(type))") }
            return v
        }
        switch type {
        case 1:
            let id = try u32() & 0x7fff_ffff
            _ = try u32() // associated stream
            guard body.readableBytes >= 2 else { throw SPDYError("a short SYN_STREAM") }
            body.moveReaderIndex(forwardBy: 2) // priority, slot
            return .synStream(id: id, headers: try headerBlock(&body), fin: fin)
        case 2: return .synReply(id: try u32() & 0x7fff_ffff, headers: try headerBlock(&body), fin: fin)
        case 3: return .rstStream(id: try u32() & 0x7fff_ffff, status: try u32())
        case 4: return .settings
        case 6: return .ping(id: try u32())
        case 7: return .goAway(lastGood: try u32() & 0x7fff_ffff, status: body.readableBytes >= 4 ? try u32() : 0)
        case 8: return .headers(id: try u32() & 0x7fff_ffff, headers: try headerBlock(&body), fin: fin)
        case 9: return .windowUpdate(id: try u32() & 0x7fff_ffff, delta: try u32() & 0x7fff_ffff)
        default: throw SPDYError("an unknown control frame type \(type)")
        }
    }

    private func headerBlock(_ body: inout ByteBuffer) throws(SPDYError) -> [String: String] {
        let compressed = body.readBytes(length: body.readableBytes) ?? []
        var out: UnsafeMutablePointer<UInt8>?
        let n = compressed.withUnsafeBufferPointer { minik_spdy_zlib_run(inflater, $0.baseAddress, $0.count, &out, Self.maxHeaderBlock) }
        guard n >= 0, let out else { throw SPDYError("a corrupt or oversized header block") }
        defer { free(out) }
        var block = ByteBuffer(bytes: UnsafeBufferPointer(start: out, count: n))
        guard let count = block.readInteger(as: UInt32.self), count <= 256 else { throw SPDYError("a header block without a count") }
        var headers: [String: String] = [:]
        for _ in 0..<count {
            guard let nl = block.readInteger(as: UInt32.self), let name = block.readString(length: Int(nl)),
                  let vl = block.readInteger(as: UInt32.self), let value = block.readString(length: Int(vl)) else {
                throw SPDYError("a truncated header block")
            }
            // Several values are joined by NUL; the streaming headers have one each.
            headers[name.lowercased()] = value.split(separator: "\0", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        }
        return headers
    }

    /// Appends a frame's bytes (a header block is compressed in this connection's context).
    func encode(_ frame: SPDYFrame, into out: inout ByteBuffer) {
        func control(_ type: UInt16, flags: UInt8 = 0, _ body: ByteBuffer) {
            out.writeInteger(UInt16(0x8003))
            out.writeInteger(type)
            out.writeInteger(UInt32(flags) << 24 | UInt32(body.readableBytes))
            var b = body
            out.writeBuffer(&b)
        }
        var body = ByteBuffer()
        switch frame {
        case .synStream(let id, let headers, let fin):
            body.writeInteger(id)
            body.writeInteger(UInt32(0))
            body.writeInteger(UInt16(0))
            body.writeBytes(compress(headers))
            control(1, flags: fin ? SPDYFrame.finFlag : 0, body)
        case .synReply(let id, let headers, let fin):
            body.writeInteger(id)
            body.writeBytes(compress(headers))
            control(2, flags: fin ? SPDYFrame.finFlag : 0, body)
        case .rstStream(let id, let status):
            body.writeInteger(id)
            body.writeInteger(status)
            control(3, body)
        case .settings:
            body.writeInteger(UInt32(0))
            control(4, body)
        case .ping(let id):
            body.writeInteger(id)
            control(6, body)
        case .goAway(let last, let status):
            body.writeInteger(last)
            body.writeInteger(status)
            control(7, body)
        case .headers(let id, let headers, let fin):
            body.writeInteger(id)
            body.writeBytes(compress(headers))
            control(8, flags: fin ? SPDYFrame.finFlag : 0, body)
        case .windowUpdate(let id, let delta):
            body.writeInteger(id)
            body.writeInteger(delta)
            control(9, body)
        case .data(let id, let fin, var payload):
            out.writeInteger(id & 0x7fff_ffff)
            out.writeInteger(UInt32(fin ? SPDYFrame.finFlag : 0) << 24 | UInt32(payload.readableBytes))
            out.writeBuffer(&payload)
        }
    }

    private func compress(_ headers: [String: String]) -> [UInt8] {
        var block = ByteBuffer()
        block.writeInteger(UInt32(headers.count))
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) {
            let lower = name.lowercased()
            block.writeInteger(UInt32(lower.utf8.count))
            block.writeString(lower)
            block.writeInteger(UInt32(value.utf8.count))
            block.writeString(value)
        }
        let raw = block.readBytes(length: block.readableBytes) ?? []
        var out: UnsafeMutablePointer<UInt8>?
        let n = raw.withUnsafeBufferPointer { minik_spdy_zlib_run(deflater, $0.baseAddress, $0.count, &out, 1 << 20) }
        guard n >= 0, let out else { fatalError("zlib: cannot compress a header block") }
        defer { free(out) }
        return Array(UnsafeBufferPointer(start: out, count: n))
    }
}
