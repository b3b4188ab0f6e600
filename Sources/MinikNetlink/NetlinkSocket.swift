// MinikNetlink: rtnetlink through libmnl, one socket per network namespace.
//
// A socket is opened inside its namespace on a throwaway thread (CMinik) and stays bound
// to that namespace for its whole life, so it can be used from any thread; it is not
// thread-safe by itself, so every request holds the socket's lock. Operations are named
// after iproute2 (Operations.swift) and take plain value types. Requests are sent with
// NLM_F_ACK and each waits for its own acknowledgement, so an error names its request.
import CMinik
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A failed netlink request: what was asked and the kernel's errno.
public struct NetlinkError: Error, CustomStringConvertible, Sendable {
    public var operation: String
    public var errno: Int32

    public init(_ operation: String, errno: Int32) {
        self.operation = operation
        self.errno = errno
    }

    public var description: String { "\(operation): \(String(cString: strerror(errno)))" }

    /// The kernel says the object exists already (EEXIST).
    public var isExists: Bool { errno == EEXIST }
    /// The kernel says the object does not exist (ENOENT, ENODEV, ESRCH).
    public var isNotFound: Bool { errno == ENOENT || errno == ENODEV || errno == ESRCH }
}

/// A netlink message being built in a fixed buffer.
public final class NetlinkMessage {
    let buffer: UnsafeMutableRawPointer
    let nlh: UnsafeMutablePointer<nlmsghdr>
    static let capacity = 4096

    /// A request of the given RTM_* type; NLM_F_REQUEST and NLM_F_ACK are always set.
    public init(type: Int, flags: Int32) {
        buffer = UnsafeMutableRawPointer.allocate(byteCount: NetlinkMessage.capacity, alignment: 8)
        buffer.initializeMemory(as: UInt8.self, repeating: 0, count: NetlinkMessage.capacity)
        nlh = mnl_nlmsg_put_header(buffer)
        nlh.pointee.nlmsg_type = UInt16(type)
        nlh.pointee.nlmsg_flags = UInt16(Int32(NLM_F_REQUEST) | Int32(NLM_F_ACK) | flags)
    }

    deinit { buffer.deallocate() }

    /// Appends the family header (ifinfomsg, ifaddrmsg, rtmsg, ndmsg...).
    public func header<T>(_ value: T) {
        let p = mnl_nlmsg_put_extra_header(nlh, MemoryLayout<T>.size)!
        p.storeBytes(of: value, as: T.self)
    }

    public func put(_ type: Int, u8 v: UInt8) { mnl_attr_put_u8(nlh, UInt16(type), v) }
    public func put(_ type: Int, u16 v: UInt16) { mnl_attr_put_u16(nlh, UInt16(type), v) }
    public func put(_ type: Int, u32 v: UInt32) { mnl_attr_put_u32(nlh, UInt16(type), v) }
    public func put(_ type: Int, u64 v: UInt64) { mnl_attr_put_u64(nlh, UInt16(type), v) }
    public func put(_ type: Int, string v: String) { mnl_attr_put_strz(nlh, UInt16(type), v) }
    public func put(_ type: Int, bytes: [UInt8]) {
        bytes.withUnsafeBytes { mnl_attr_put(nlh, UInt16(type), bytes.count, $0.baseAddress) }
    }
    /// An IPv4 address attribute, in network byte order.
    public func put(_ type: Int, ipv4 value: UInt32) { mnl_attr_put_u32(nlh, UInt16(type), value) }

    /// A nested attribute around whatever `body` puts.
    public func nest(_ type: Int, _ body: () -> Void) {
        let start = mnl_attr_nest_start(nlh, UInt16(type))
        body()
        mnl_attr_nest_end(nlh, start)
    }

    var length: Int { Int(nlh.pointee.nlmsg_len) }
}

/// One parsed reply message: its type, its family header and its attributes.
public struct NetlinkReply {
    public var type: UInt16
    public var header: [UInt8]
    public var attributes: [UInt16: [UInt8]]

    public func headerAs<T>(_: T.Type) -> T? {
        guard header.count >= MemoryLayout<T>.size else { return nil }
        return header.withUnsafeBytes { $0.loadUnaligned(as: T.self) }
    }

    public func string(_ type: Int) -> String? {
        guard let b = attributes[UInt16(type)] else { return nil }
        return String(decoding: b.prefix { $0 != 0 }, as: UTF8.self)
    }

    public func u32(_ type: Int) -> UInt32? {
        guard let b = attributes[UInt16(type)], b.count >= 4 else { return nil }
        return b.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }
    }

    /// The attributes nested in one attribute's payload (the last of each type wins).
    public static func nested(_ payload: [UInt8]) -> [UInt16: [UInt8]] {
        var attrs: [UInt16: [UInt8]] = [:]
        var off = 0
        while off + 4 <= payload.count {
            let len = Int(payload[off]) | Int(payload[off + 1]) << 8
            let type = (UInt16(payload[off + 2]) | UInt16(payload[off + 3]) << 8) & 0x3fff
            if len < 4 || off + len > payload.count { break }
            attrs[type] = Array(payload[(off + 4)..<(off + len)])
            off += (len + 3) & ~3
        }
        return attrs
    }
}

public final class NetlinkSocket: @unchecked Sendable {
    private let nl: OpaquePointer
    private let lock = NSLock()
    private var seq: UInt32
    private let portID: UInt32
    private let recvBuffer: UnsafeMutableRawPointer
    private static let recvSize = 64 * 1024

    /// Wraps an open NETLINK_ROUTE socket fd (the socket then owns it).
    public init(fd: Int32) throws(NetlinkError) {
        guard let nl = mnl_socket_fdopen(fd) else {
            let e = errno
            close(fd)
            throw NetlinkError("netlink socket", errno: e)
        }
        if mnl_socket_bind(nl, 0, pid_t(MNL_SOCKET_AUTOPID)) < 0 {
            let e = errno
            mnl_socket_close(nl)
            throw NetlinkError("netlink bind", errno: e)
        }
        var on: Int32 = 1
        // Extended acks carry the kernel's own message for a rejected request.
        _ = setsockopt(mnl_socket_get_fd(nl), Int32(SOL_NETLINK), Int32(NETLINK_EXT_ACK), &on, socklen_t(MemoryLayout<Int32>.size))
        self.nl = nl
        self.portID = mnl_socket_get_portid(nl)
        self.seq = UInt32(truncatingIfNeeded: time(nil))
        self.recvBuffer = UnsafeMutableRawPointer.allocate(byteCount: NetlinkSocket.recvSize, alignment: 8)
    }

    /// A socket in the caller's own network namespace.
    public convenience init() throws(NetlinkError) {
        let fd = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), NETLINK_ROUTE)
        guard fd >= 0 else { throw NetlinkError("netlink socket", errno: errno) }
        try self.init(fd: fd)
    }

    /// A socket inside the network namespace `namespaceFD` (opened on a throwaway thread).
    public convenience init(namespaceFD: Int32) throws(NetlinkError) {
        let fd = minik_socket_in_netns(namespaceFD, AF_NETLINK, Int32(SOCK_RAW.rawValue), NETLINK_ROUTE)
        guard fd >= 0 else { throw NetlinkError("netlink socket in namespace", errno: -fd) }
        try self.init(fd: fd)
    }

    deinit {
        mnl_socket_close(nl)
        recvBuffer.deallocate()
    }

    /// Sends a request and waits for its acknowledgement.
    public func request(_ message: NetlinkMessage, _ operation: @autoclosure () -> String) throws(NetlinkError) {
        _ = try exchange(message, operation(), collect: false)
    }

    /// Sends a GET request (dump or single) and returns every reply message.
    public func query(_ message: NetlinkMessage, _ operation: @autoclosure () -> String) throws(NetlinkError) -> [NetlinkReply] {
        try exchange(message, operation(), collect: true)
    }

    /// One request and everything the kernel answers to it (matched by sequence number):
    /// data messages (when collecting) until NLMSG_DONE, the ack, or the first one for a
    /// non-dump GET; an error ack becomes a NetlinkError.
    private func exchange(_ message: NetlinkMessage, _ operation: String, collect: Bool) throws(NetlinkError) -> [NetlinkReply] {
        lock.lock()
        defer { lock.unlock() }
        let s = nextSeq()
        message.nlh.pointee.nlmsg_seq = s
        if mnl_socket_sendto(nl, message.buffer, message.length) < 0 {
            throw NetlinkError(operation, errno: errno)
        }
        let headerSize = Self.headerSize(for: Int(message.nlh.pointee.nlmsg_type))
        let isDump = Int32(message.nlh.pointee.nlmsg_flags) & Int32(NLM_F_DUMP) == Int32(NLM_F_DUMP)
        var replies: [NetlinkReply] = []
        while true {
            let n = mnl_socket_recvfrom(nl, recvBuffer, NetlinkSocket.recvSize)
            if n < 0 {
                if errno == EINTR { continue }
                throw NetlinkError(operation, errno: errno)
            }
            var len = Int32(n)
            var h: UnsafePointer<nlmsghdr>? = UnsafePointer(recvBuffer.assumingMemoryBound(to: nlmsghdr.self))
            while let cur = h, mnl_nlmsg_ok(cur, len) {
                h = UnsafePointer(mnl_nlmsg_next(cur, &len))
                guard cur.pointee.nlmsg_seq == s else { continue }
                let type = cur.pointee.nlmsg_type
                if type == UInt16(NLMSG_DONE) { return replies }
                if type == UInt16(NLMSG_ERROR) {
                    let code = -minik_nlmsg_error_code(cur)
                    if code != 0 { throw NetlinkError(operation, errno: code) }
                    return replies
                }
                if collect {
                    replies.append(Self.parse(cur, headerSize: headerSize))
                    if !isDump { return replies }
                }
            }
        }
    }

    private func nextSeq() -> UInt32 {
        seq &+= 1
        return seq
    }

    private static func headerSize(for requestType: Int) -> Int {
        switch requestType {
        case RTM_GETLINK, RTM_NEWLINK: return MemoryLayout<ifinfomsg>.size
        case RTM_GETADDR, RTM_NEWADDR: return MemoryLayout<ifaddrmsg>.size
        case RTM_GETROUTE, RTM_NEWROUTE: return MemoryLayout<rtmsg>.size
        case RTM_GETNEIGH, RTM_NEWNEIGH: return MemoryLayout<ndmsg>.size
        case RTM_GETQDISC, RTM_NEWQDISC: return MemoryLayout<tcmsg>.size
        default: return 0
        }
    }

    private static func parse(_ nlh: UnsafePointer<nlmsghdr>, headerSize: Int) -> NetlinkReply {
        let payload = mnl_nlmsg_get_payload(nlh)!
        let header = Array(UnsafeRawBufferPointer(start: payload, count: headerSize))
        var attrs: [UInt16: [UInt8]] = [:]
        let end = UnsafeRawPointer(nlh) + Int(nlh.pointee.nlmsg_len)
        var p = UnsafeRawPointer(payload) + ((headerSize + 3) & ~3)
        while p + MemoryLayout<nlattr>.size <= end {
            let attr = p.assumingMemoryBound(to: nlattr.self)
            let alen = Int(attr.pointee.nla_len)
            guard alen >= MemoryLayout<nlattr>.size, p + alen <= end else { break }
            let type = attr.pointee.nla_type & 0x3fff /* NLA_TYPE_MASK */
            attrs[type] = Array(UnsafeRawBufferPointer(start: p + MemoryLayout<nlattr>.size, count: alen - MemoryLayout<nlattr>.size))
            p += (alen + 3) & ~3
        }
        return NetlinkReply(type: nlh.pointee.nlmsg_type, header: header, attributes: attrs)
    }
}
