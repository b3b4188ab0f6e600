// exec and attach over SPDY (kubelet's remotecommand httpstream.go, protocol
// v4.channel.k8s.io): the client opens one stream per role, named by its `streamtype`
// header (error, stdin, stdout, stderr, resize); the command starts once all the
// request asks for are open. Resize is a stream of JSON objects {"Width":W,"Height":H},
// one per line; stdin's FIN is its EOF. At the end stdout and stderr get FIN, the error
// stream the Status (as on the WebSocket's channel 3), then the connection goes away.
import Foundation
import MinikAPI
import MinikRuntime
import NIOCore

final class SPDYExec: SPDYService, ExecClient, @unchecked Sendable {
    unowned let connection: SPDYConnection
    let loop: EventLoop
    let backend: APIBackend
    var request: StreamRequest
    var streams: [String: UInt32] = [:]
    var session: StreamSession?
    var starting = SessionStart()
    var resizeBuffer: [UInt8] = []
    var ended = false

    init(_ connection: SPDYConnection, loop: EventLoop, backend: APIBackend, request: StreamRequest) {
        self.connection = connection
        self.loop = loop
        self.backend = backend
        self.request = request
        // kubelet's streamCreationTimeout: the client has 30 s to open its streams.
        loop.scheduleTask(in: .seconds(30)) { [weak self] in
            guard let self, session == nil, !ended else { return }
            finish(StreamStatus.failure("timed out waiting for client to create streams"))
        }
    }

    /// The streams kubelet waits for: error, and those the request asks for.
    var expected: Int {
        1 + (request.stdin ? 1 : 0) + (request.stdout ? 1 : 0) + (request.stderr && !request.tty ? 1 : 0) + (request.tty ? 1 : 0)
    }

    func open(_ id: UInt32, headers: [String: String]) -> Bool {
        guard let type = headers["streamtype"], streams[type] == nil, streams.count < 8 else { return false }
        streams[type] = id
        return true
    }

    func replied(_ id: UInt32) {
        let known = streams.keys.filter { ["error", "stdin", "stdout", "stderr", "resize"].contains($0) }.count
        guard session == nil, !ended, known == expected, !starting.waitingForSize else { return }
        guard request.kind == .exec && request.tty else { return start() }
        starting.waitingForSize = true
        loop.scheduleTask(in: SessionStart.sizeWait) { [weak self] in
            if self?.starting.waitingForSize == true { self?.start() }
        }
    }

    func start() {
        guard session == nil, !ended else { return }
        starting.waitingForSize = false
        switch SessionStart.session(request, backend: backend, client: self, loop: loop) {
        case .success(let s):
            session = s
            starting.replay(into: s)
        case .failure(let error): finish(ExecSession.failed(error))
        }
    }

    func data(_ id: UInt32, _ payload: ByteBuffer) {
        if id == streams["stdin"] {
            if let session { session.input(payload) } else if !starting.keep(payload) { setReading(false) }
        } else if id == streams["resize"] {
            resizeBuffer += payload.readableBytesView
            while let nl = resizeBuffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = Array(resizeBuffer[..<nl])
                resizeBuffer.removeSubrange(...nl)
                if let json = try? JSON.parse(line), let w = json["Width"]?.int, let h = json["Height"]?.int,
                   let cols = UInt16(exactly: w), let rows = UInt16(exactly: h) {
                    if starting.sized(cols: cols, rows: rows, request: &request, session: session) { start() }
                }
            }
            if resizeBuffer.count > 4096 { resizeBuffer = [] }
        }
    }

    func finished(_ id: UInt32) {
        guard id == streams["stdin"] else { return }
        if let session { session.closeInput() } else { starting.inputClosed = true }
    }

    func reset(_ id: UInt32) { finished(id) }

    func writabilityChanged() { session?.clientWritabilityChanged() }

    func closed() {
        ended = true
        session?.clientGone()
        session = nil
    }

    // MARK: ExecClient

    func output(_ stream: UInt8, _ data: ByteBuffer) {
        // kubelet drops what the client opened no stream for.
        guard let id = streams[stream == 1 ? "stdout" : "stderr"] else { return }
        connection.sendData(id, data)
    }

    func finish(_ status: JSON) {
        guard !ended else { return }
        ended = true
        session = nil
        for role in ["stdout", "stderr"] { if let id = streams[role] { connection.finish(id) } }
        if let e = streams["error"] {
            var b = ByteBuffer()
            b.writeBytes(status.serialized())
            connection.sendData(e, b, fin: true)
        }
        connection.goAway()
    }

    func abort() {
        ended = true
        session = nil
        connection.transport?.abort()
    }

    var isWritable: Bool { connection.transport?.isWritable ?? false }
    func setReading(_ on: Bool) { connection.transport?.setReading(on) }
}
