// The supervisor's control socket: a Unix stream socket in the cluster's state directory
// (mode 0600, so root only), one JSON request line and one JSON response line per
// connection. Both ends live here so they cannot drift apart.
import Foundation
import MinikRuntime
import MinikSpec

public struct ControlRequest: Codable, Sendable {
    /// api: one Kubernetes API request, answered by the same handler as HTTPS (the
    /// CLI's apply, delete and scale use it: the root-only socket is its credential).
    /// check: the spec rules of `minik apply` over a file against the running spec, in the
    /// supervisor (which has it), so the CLI need not fetch a spec of thousands of objects.
    /// trace: `minik trace` run where the state already is (no copy of a big state to
    /// the CLI); the answer's body is the Trace.Report as JSON.
    public enum Op: String, Codable, Sendable { case status, down, ping, api, check, trace }
    public var op: Op
    public var api: APICall?
    public var check: FileCheck?
    public var trace: TraceCall?

    public init(op: Op, api: APICall? = nil, check: FileCheck? = nil, trace: TraceCall? = nil) {
        self.op = op
        self.api = api
        self.check = check
        self.trace = trace
    }
}

public struct TraceCall: Codable, Sendable {
    public var source: String
    public var destination: String
    public var namespace: String
    public var port: String?
    public var size: Int
    public var live: Bool

    public init(source: String, destination: String, namespace: String, port: String?, size: Int, live: Bool) {
        self.source = source
        self.destination = destination
        self.namespace = namespace
        self.port = port
        self.size = size
        self.live = live
    }
}

/// A file to check as `minik apply` would apply it: its text and the name its problems
/// are reported under. The answer: ok with the warnings (in `warnings`), or the problems
/// (in `message`, one per line, each with file:line:column).
public struct FileCheck: Codable, Sendable {
    public var file: String
    public var text: String

    public init(file: String, text: String) {
        self.file = file
        self.text = text
    }
}

/// An API request over the control socket: path with its query, and a JSON body.
public struct APICall: Codable, Sendable {
    public var method: String
    public var uri: String
    public var accept: String
    public var contentType: String
    public var body: String

    public init(method: String, uri: String, accept: String = "application/json", contentType: String = "application/json", body: String = "") {
        self.method = method
        self.uri = uri
        self.accept = accept
        self.contentType = contentType
        self.body = body
    }
}

public struct ControlResponse: Codable, Sendable {
    public var ok: Bool
    public var message: String?
    public var state: ClusterState?
    /// For api: the HTTP status and the body (JSON), and warnings.
    public var status: Int?
    public var body: String?
    public var warnings: [String]?

    public init(ok: Bool, message: String? = nil, state: ClusterState? = nil) {
        self.ok = ok
        self.message = message
        self.state = state
    }
}

public enum ControlSocket {
    static func address(_ path: String) -> sockaddr_un? {
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return nil }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in
            for (i, b) in bytes.enumerated() { p[i] = b }
            p[bytes.count] = 0
        }
        return addr
    }

    /// Listens on path (replacing a stale socket file). Returns the listening fd.
    public static func listen(path: String) throws(RuntimeError) -> Int32 {
        unlink(path)
        guard var addr = address(path) else { throw .state("socket path too long: \(path)") }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        if fd < 0 { throw .system("socket", errno: errno) }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        if rc < 0 { let e = errno; close(fd); throw .system("bind \(path)", errno: e) }
        chmod(path, 0o600)
        if Glibc.listen(fd, 64) < 0 { let e = errno; close(fd); throw .system("listen \(path)", errno: e) }
        return fd
    }

    /// Sends one request and reads the response; nil when nobody answers.
    public static func call(path: String, _ request: ControlRequest, timeout: Int = 30) -> ControlResponse? {
        guard var addr = address(path) else { return nil }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var tv = timeval(tv_sec: timeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0, let data = try? encoder.encode(request) else { return nil }
        guard writeAll(fd, data + [0x0a]) else { return nil }
        guard let line = readLine(fd) else { return nil }
        return try? decoder.decode(ControlResponse.self, from: line)
    }

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.dateDecodingStrategy = ClusterState.preciseDateParsing
        return d
    }()

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.dateEncodingStrategy = ClusterState.preciseDates
        return e
    }()

    static func writeAll(_ fd: Int32, _ data: Data) -> Bool {
        var off = 0
        return data.withUnsafeBytes { p in
            while off < p.count {
                let n = write(fd, p.baseAddress! + off, p.count - off)
                if n < 0 { if errno == EINTR { continue }; return false }
                off += n
            }
            return true
        }
    }

    /// Reads up to the first newline (or EOF).
    static func readLine(_ fd: Int32) -> Data? {
        var out = Data()
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = read(fd, &buf, buf.count)
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { return out.isEmpty ? nil : out }
            if let nl = buf[0..<n].firstIndex(of: 0x0a) {
                out.append(contentsOf: buf[0..<nl])
                return out
            }
            out.append(contentsOf: buf[0..<n])
        }
    }
}
