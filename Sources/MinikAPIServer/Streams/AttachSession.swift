// One attach session (`kubectl attach`, `kubectl run -it`): the container's output from
// now on (what its log copier reads, so stdout and stderr arrive merged, as on its
// terminal), and the client's input written to the container's stdin or terminal.
// It ends with Success when the container's run ends, as kubelet's attach does; the
// client's leaving ends its input (closing the container's stdin when stdinOnce).
// Bounded: input is written on a queue of its own and the client's reading pauses while
// 1 MiB waits; a client that stops reading is dropped once 8 MiB more wait for it.
import Foundation
import MinikAPI
import NIOCore

/// What a transport (WebSocket channels, SPDY streams) drives: an exec or an attach.
protocol StreamSession: AnyObject {
    func input(_ data: ByteBuffer)
    func closeInput()
    func resize(cols: UInt16, rows: UInt16)
    func clientWritabilityChanged()
    func clientGone()
}

extension ExecSession: StreamSession {}

/// What a transport does until its session starts: an exec with a terminal waits for the
/// client's first window size (kubectl sends it at once), so that the command sees its
/// real size from its first instruction; input meanwhile waits here.
struct SessionStart {
    /// Waiting for that size (at most 300 ms).
    var waitingForSize = false
    var input: [ByteBuffer] = []
    var inputBytes = 0
    var inputClosed = false
    static let sizeWait = TimeAmount.milliseconds(300)

    /// Keeps input for later; false once 1 MiB waits (stop reading the client).
    mutating func keep(_ b: ByteBuffer) -> Bool {
        input.append(b)
        inputBytes += b.readableBytes
        return inputBytes < 1024 * 1024
    }

    /// A window size from the client: true when it is the first one a waiting exec
    /// needs (the request now carries it: start the session); later ones resize.
    mutating func sized(cols: UInt16, rows: UInt16, request: inout StreamRequest, session: StreamSession?) -> Bool {
        guard waitingForSize else {
            session?.resize(cols: cols, rows: rows)
            return false
        }
        request.cols = cols
        request.rows = rows
        return true
    }

    /// Hands what waited to the session that just started.
    mutating func replay(into s: StreamSession) {
        input.forEach { s.input($0) }
        input = []
        inputBytes = 0
        if inputClosed { s.closeInput() }
    }

    /// Starts a session for `request` (exec or attach); a request that cannot be
    /// served gives the Status to finish with.
    static func session(_ request: StreamRequest, backend: APIBackend, client: ExecClient, loop: EventLoop) -> Swift.Result<StreamSession, APIError> {
        do throws(APIError) {
            if request.kind == .attach {
                return .success(AttachSession.start(try backend.attach(request), client: client, loop: loop))
            }
            return .success(ExecSession.start(try backend.exec(request), client: client, loop: loop))
        } catch {
            return .failure(error)
        }
    }
}

final class AttachSession: StreamSession, @unchecked Sendable {
    let loop: EventLoop
    weak var client: ExecClient?
    let target: AttachTarget
    let inputQueue = DispatchQueue(label: "minik.attach.input")
    var stop: (@Sendable () -> Void)?
    var watch: RepeatedTask?
    var done = false
    var inputClosed = false
    var inputPending = 0
    /// Output written while the client's connection was over its high-water mark (what
    /// its buffer grew by); reset once it drains.
    var stalled = 0

    init(_ target: AttachTarget, client: ExecClient, loop: EventLoop) {
        self.target = target
        self.client = client
        self.loop = loop
    }

    static func start(_ target: AttachTarget, client: ExecClient, loop: EventLoop) -> AttachSession {
        let s = AttachSession(target, client: client, loop: loop)
        s.stop = target.follow { [weak s] chunk in s?.deliver(chunk) }
        var gone = 0
        s.watch = loop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { [weak s] _ in
            guard let s, !s.done else { return }
            // The run ended: what its last writes left in the pipe gets 200 ms to arrive.
            if !target.running() { gone += 1 }
            if gone >= 3 { s.finish(StreamStatus.success) }
        }
        return s
    }

    /// On the log copier's thread: hop to the loop; bounded there.
    func deliver(_ chunk: [UInt8]) {
        loop.execute { [self] in
            guard !done, let client else { return }
            if client.isWritable {
                stalled = 0
            } else {
                stalled += chunk.count
                if stalled > 8 * 1024 * 1024 {
                    // It would not read a Status either: the connection is closed.
                    done = true
                    cleanUp()
                    client.abort()
                    return
                }
            }
            var b = ByteBuffer()
            b.writeBytes(chunk)
            client.output(1, b)
        }
    }

    func input(_ data: ByteBuffer) {
        guard !done, !inputClosed, let console = target.console else { return }
        let bytes = Array(data.readableBytesView)
        inputPending += bytes.count
        if inputPending > 1024 * 1024 { client?.setReading(false) }
        inputQueue.async { [self] in
            _ = console.write(bytes)
            loop.execute { [self] in
                inputPending -= bytes.count
                if inputPending <= 1024 * 1024 && !done { client?.setReading(true) }
            }
        }
    }

    func closeInput() {
        guard !inputClosed else { return }
        inputClosed = true
        if let console = target.console { inputQueue.async { console.inputEnded() } }
    }

    func resize(cols: UInt16, rows: UInt16) {
        target.console?.resize(rows: rows, cols: cols)
    }

    func clientWritabilityChanged() {}

    func clientGone() {
        guard !done else { return }
        done = true
        closeInput()
        cleanUp()
    }

    func finish(_ status: JSON) {
        guard !done else { return }
        done = true
        cleanUp()
        client?.finish(status)
    }

    func cleanUp() {
        stop?()
        stop = nil
        watch?.cancel()
        watch = nil
    }
}
