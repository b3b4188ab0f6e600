// One exec (or attach) session on the server: the command's pipes or terminal taken over
// by channels on the client connection's event loop, so everything of a session runs on
// one thread without locks. The transport (WebSocket channels or SPDY streams) is an
// ExecClient.
//
// Bounded both ways: output is read only while the client's connection is writable
// (its write buffer stays under the server's high-water mark), and the client's input is
// read only while the command's stdin takes it. A client that goes away leaves the
// command a hang-up, as a terminal does: SIGHUP to its process group (and with a
// terminal, closing the master hangs up the session the kernel's way too).
// The end: once the command has exited and its output has been read to EOF, the status
// goes out (exit code, or how it could not run) and the transport closes. A process the
// command left behind holding its output does not keep the session open: once the
// command is gone, output that stays quiet for a quarter second ends it.
import Foundation
import MinikAPI
import MinikRuntime
import NIOCore
import NIOPosix

/// The client side of an exec session, as the transport sees it.
protocol ExecClient: AnyObject {
    /// Output of stream 1 (stdout, or the terminal) or 2 (stderr).
    func output(_ stream: UInt8, _ data: ByteBuffer)
    /// The final status (a metav1.Status); then the transport ends.
    func finish(_ status: JSON)
    /// Whether the client's connection takes more output now.
    var isWritable: Bool { get }
    /// Stops or resumes reading the client's input.
    func setReading(_ on: Bool)
    /// Drops the client at once (it stopped reading).
    func abort()
}

final class ExecSession: @unchecked Sendable {
    let loop: EventLoop
    weak var client: ExecClient?
    let pid: pid_t
    let tty: Bool
    var outputs: [Channel] = []
    var stdinChannel: Channel?
    /// A duplicate of the terminal's master for TIOCSWINSZ, closed at the end.
    var resizeFD: Int32 = -1
    var exitStatus: Int32?
    var done = false
    var bytesSinceTick = 0
    var quietTimer: RepeatedTask?
    /// The channels are up; before, input waits in pendingInput.
    var started = false
    var pendingInput: [ByteBuffer] = []
    var pendingClose = false

    init(loop: EventLoop, client: ExecClient, pid: pid_t, tty: Bool) {
        self.loop = loop
        self.client = client
        self.pid = pid
        self.tty = tty
    }

    /// Takes over the process's descriptors on `loop` (call it there). Input that comes
    /// before the channels are up waits for them.
    static func start(_ process: ContainerExec, client: ExecClient, loop: EventLoop) -> ExecSession {
        let session = ExecSession(loop: loop, client: client, pid: process.pid, tty: process.tty)
        let (input, output, errors) = process.takeDescriptors()
        let waiting = Thread {
            let status = process.wait()
            loop.execute { session.exited(status) }
        }
        waiting.start()
        var made: [EventLoopFuture<Channel>] = []
        // The session knows each channel before it is active (its EOF may come at once).
        let bootstrap = { (stream: UInt8, reads: Bool, takesInput: Bool) in
            NIOPipeBootstrap(group: loop).channelInitializer { ch in
                if reads { session.outputs.append(ch) }
                if takesInput { session.stdinChannel = ch }
                return ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(ExecPipe(session, stream: stream)) }
            }
        }
        if process.tty {
            session.resizeFD = dup(output)
            let writer = input != nil ? dup(output) : -2
            if session.resizeFD < 0 || writer == -1 {
                // Out of descriptors: nothing was handed to NIO yet.
                [output, session.resizeFD, writer].forEach { if $0 >= 0 { close($0) } }
                session.resizeFD = -1
                loop.execute { session.failedToStart("no file descriptors left for the terminal") }
                return session
            }
            // One channel reads the master and, with stdin, writes a duplicate of it.
            made.append(writer >= 0 ? bootstrap(1, true, true).takingOwnershipOfDescriptors(input: output, output: writer)
                                    : bootstrap(1, true, false).takingOwnershipOfDescriptor(input: output))
        } else {
            made.append(bootstrap(1, true, false).takingOwnershipOfDescriptor(input: output))
            if let errors { made.append(bootstrap(2, true, false).takingOwnershipOfDescriptor(input: errors)) }
            if let input { made.append(bootstrap(0, false, true).takingOwnershipOfDescriptor(output: input)) }
        }
        EventLoopFuture.andAllSucceed(made, on: loop).whenComplete { result in
            switch result {
            case .success: session.ready()
            case .failure(let e): session.failedToStart("\(e)")
            }
        }
        return session
    }

    func ready() {
        started = true
        let early = pendingInput
        pendingInput = []
        early.forEach { input($0) }
        if pendingClose { closeInput() }
        client?.setReading(true)
    }

    func failedToStart(_ message: String) {
        guard !done else { return }
        done = true
        if exitStatus == nil { kill(pid, SIGKILL) }
        cleanUp()
        client?.finish(StreamStatus.failure(message))
    }

    // MARK: from the client

    func input(_ data: ByteBuffer) {
        guard !done else { return }
        guard started else {
            pendingInput.append(data)
            if pendingInput.count > 16 { client?.setReading(false) }
            return
        }
        guard let ch = stdinChannel else { return }
        ch.writeAndFlush(data, promise: nil)
        if !ch.isWritable { client?.setReading(false) }
    }

    /// The client's stdin ended.
    func closeInput() {
        guard started else { pendingClose = true; return }
        guard let ch = stdinChannel else { return }
        stdinChannel = nil
        if tty {
            // ^D at the start of a line: the terminal's EOF (its master stays open).
            var b = ch.allocator.buffer(capacity: 1)
            b.writeInteger(UInt8(4))
            ch.writeAndFlush(b, promise: nil)
        } else {
            // Once what was written before has gone out (a plain close drops it).
            ch.writeAndFlush(ch.allocator.buffer(capacity: 0)).whenComplete { _ in ch.close(promise: nil) }
        }
        client?.setReading(true)
    }

    func resize(cols: UInt16, rows: UInt16) {
        guard !done, resizeFD >= 0 else { return }
        ContainerExec.resize(master: resizeFD, rows: rows, cols: cols)
    }

    /// The client's connection can take output again (or not).
    func clientWritabilityChanged() {
        let on = client?.isWritable ?? false
        for ch in outputs { ch.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in } }
    }

    /// The client went away before the end: the command gets a hang-up, and EOF on its
    /// input. What it writes meanwhile is read and dropped for 5 s (as a hung-up terminal
    /// takes it), so that it can handle the hang-up (a shell reports it on stderr first:
    /// closing the pipe at once would kill it with SIGPIPE instead); then its pipes close.
    func clientGone() {
        guard !done else { return }
        done = true
        if exitStatus == nil {
            kill(-pid, SIGHUP)
            kill(pid, SIGHUP)
        }
        // A terminal hangs up its way: closing the master (writes then fail with EIO).
        if tty { cleanUp(); return }
        stdinChannel?.close(promise: nil)
        stdinChannel = nil
        quietTimer?.cancel()
        quietTimer = nil
        for ch in outputs { ch.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in } }
        loop.scheduleTask(in: .seconds(5)) { [self] in cleanUp() }
    }

    // MARK: from the command

    func output(_ stream: UInt8, _ data: ByteBuffer) {
        guard !done, let client else { return }
        bytesSinceTick += data.readableBytes
        client.output(stream, data)
        if !client.isWritable { clientWritabilityChanged() }
    }

    func outputClosed(_ ch: Channel) {
        outputs.removeAll { $0 === ch }
        if stdinChannel === ch { stdinChannel = nil }
        finishIfDone()
    }

    func stdinWritabilityChanged(_ ch: Channel) {
        if !done, ch === stdinChannel { client?.setReading(ch.isWritable) }
    }

    func exited(_ status: Int32) {
        exitStatus = status
        guard !done else { return }
        if !finishIfDone() {
            quietTimer = loop.scheduleRepeatedTask(initialDelay: .milliseconds(250), delay: .milliseconds(250)) { [self] _ in
                if bytesSinceTick == 0 && client?.isWritable != false {
                    outputs.forEach { $0.close(promise: nil) }
                }
                bytesSinceTick = 0
            }
        }
    }

    @discardableResult
    func finishIfDone() -> Bool {
        guard !done, let status = exitStatus, outputs.isEmpty else { return false }
        done = true
        cleanUp()
        client?.finish(StreamStatus.forWaitStatus(status))
        return true
    }

    /// Ends the session before the command started (it could not run).
    static func failed(_ error: APIError) -> JSON {
        error.code == 500 ? StreamStatus.failure(error.message) : error.status
    }

    func cleanUp() {
        quietTimer?.cancel()
        quietTimer = nil
        outputs.forEach { $0.close(promise: nil) }
        outputs = []
        stdinChannel?.close(promise: nil)
        stdinChannel = nil
        if resizeFD >= 0 { close(resizeFD) }
        resizeFD = -1
    }
}

/// A pipe (or terminal master) of the command, as a channel on the session's loop.
final class ExecPipe: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let session: ExecSession
    let stream: UInt8

    init(_ session: ExecSession, stream: UInt8) {
        self.session = session
        self.stream = stream
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        session.output(stream, unwrapInboundIn(data))
    }

    func channelInactive(context: ChannelHandlerContext) {
        session.outputClosed(context.channel)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        session.stdinWritabilityChanged(context.channel)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // EIO from a terminal whose last holder closed it, EPIPE on a closed stdin: the end.
        context.close(promise: nil)
    }
}
