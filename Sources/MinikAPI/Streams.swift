// The streaming subresources of a pod: exec, attach and portforward. What a request asks
// for (its query, parsed as the apiserver and kubelet parse it: `command` repeats, ports
// are a list), and the Status a finished command reports on the status channel (as
// kubelet's remotecommand server writes it, so that kubectl prints "command terminated
// with exit code 3" and exits 3, and the Python client's `returncode` reads the code).
// The transports (WebSocket channels, SPDY streams) live in MinikAPIServer.
import Foundation
import MinikRuntime

public struct StreamRequest: Sendable, Equatable {
    public enum Kind: String, Sendable { case exec, attach, portforward }
    public var kind: Kind
    public var namespace: String
    public var pod: String
    public var container: String?
    public var command: [String] = []
    public var stdin = false
    public var stdout = false
    public var stderr = false
    public var tty = false
    /// portforward: the ports of the `ports` parameter (the WebSocket protocol needs them
    /// up front; SPDY names a port per stream).
    public var ports: [Int] = []
    /// The terminal's first size (exec with tty), from the client's first resize message.
    public var rows: UInt16 = 0
    public var cols: UInt16 = 0

    public init(kind: Kind, namespace: String, pod: String) {
        self.kind = kind
        self.namespace = namespace
        self.pod = pod
    }

    /// The request of `uri` when its path is a pod's exec, attach or portforward
    /// subresource (nil for any other path); a bad parameter is a 400 naming it.
    public static func parse(_ uri: String) throws(APIError) -> StreamRequest? {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = APIRequest.decode(String(parts[0]), plus: false).split(separator: "/").map(String.init)
        // api v1 namespaces NS pods NAME SUB
        guard path.count == 7, path[0] == "api", path[1] == "v1", path[2] == "namespaces", path[4] == "pods",
              let kind = Kind(rawValue: path[6]) else { return nil }
        var r = StreamRequest(kind: kind, namespace: path[3], pod: path[5])
        var query: [(String, String)] = []
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                query.append((APIRequest.decode(String(kv[0])), kv.count > 1 ? APIRequest.decode(String(kv[1])) : ""))
            }
        }
        func flag(_ name: String) -> Bool {
            // As the apiserver converts a query bool: absent, "0" or "false" (any case) is
            // false, anything else true (the Python client sends "True").
            guard let v = query.first(where: { $0.0 == name })?.1 else { return false }
            return !(v == "0" || v.lowercased() == "false")
        }
        r.container = query.first { $0.0 == "container" }?.1
        if r.container == "" { r.container = nil }
        switch kind {
        case .exec, .attach:
            r.command = query.filter { $0.0 == "command" }.map(\.1)
            r.stdin = flag("stdin")
            r.stdout = flag("stdout")
            r.stderr = flag("stderr")
            r.tty = flag("tty")
            if kind == .exec && r.command.isEmpty {
                throw APIError.badRequest("you must specify at least 1 command")
            }
            if !r.stdin && !r.stdout && !r.stderr {
                throw APIError.badRequest("you must specify at least 1 of stdin, stdout, stderr")
            }
        case .portforward:
            for (k, v) in query where k == "ports" {
                for p in v.split(separator: ",", omittingEmptySubsequences: false) {
                    guard let n = Int(p), (1...65535).contains(n) else {
                        throw APIError.badRequest("invalid port \"\(p)\": a port number from 1 to 65535")
                    }
                    r.ports.append(n)
                }
            }
            // Two one-byte channels per port in the WebSocket protocol.
            if r.ports.count > 127 { throw APIError.badRequest("too many ports: at most 127 in one port-forward") }
        }
        return r
    }
}

/// What the status channel (or SPDY error stream) carries at the end of a command, in
/// the v4 protocols: a metav1.Status.
public enum StreamStatus {
    public static let success: JSON = ["metadata": [:], "status": "Success"]

    /// A command that ended with a non-zero code (128 + signal for one killed).
    public static func exitCode(_ code: Int32) -> JSON {
        ["metadata": [:], "status": "Failure",
         "message": .string("command terminated with non-zero exit code: exit status \(code)"),
         "reason": "NonZeroExitCode",
         "details": ["causes": [["reason": "ExitCode", "message": .string(String(code))]]]]
    }

    /// A command that could not run at all (InternalError, as kubelet reports it).
    public static func failure(_ message: String) -> JSON {
        ["metadata": [:], "status": "Failure", "message": .string("Internal error occurred: error executing command in container: \(message)"),
         "reason": "InternalError", "details": ["causes": [["message": .string("error executing command in container: \(message)")]]], "code": 500]
    }

    /// The status for a process's wait status (as waitpid returns it).
    public static func forWaitStatus(_ status: Int32) -> JSON {
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return code == 0 ? success : exitCode(code)
    }
}

/// What `attach` connects to: the container's console (stdin, and its terminal when it
/// has one) and its output from now on.
public struct AttachTarget: Sendable {
    public var console: ContainerConsole?
    /// Starts delivering the container's output (on another thread, in chunks); returns
    /// what stops it.
    public var follow: @Sendable (@escaping @Sendable ([UInt8]) -> Void) -> @Sendable () -> Void
    /// Whether the container's run that was attached to still runs.
    public var running: @Sendable () -> Bool

    public init(console: ContainerConsole?, follow: @escaping @Sendable (@escaping @Sendable ([UInt8]) -> Void) -> @Sendable () -> Void,
                running: @escaping @Sendable () -> Bool) {
        self.console = console
        self.follow = follow
        self.running = running
    }
}
