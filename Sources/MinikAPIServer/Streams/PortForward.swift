// Port-forward, as kubelet serves it (pkg/cri/streaming/portforward): each connection
// the client accepts locally becomes a pair of SPDY streams sharing a requestID, an
// error stream and a data stream, both naming the port. When both are open, a TCP
// connection is made inside the pod's network namespace to 127.0.0.1:port (the
// backend's connect), and bytes are copied both ways. The client's FIN half-closes the
// pod socket; the pod's EOF closes the data stream, then the error stream (kubectl waits
// for the latter before it closes its local socket). A failed connect is told as text
// on the error stream, which kubectl prints.
// Many pairs run at once on one connection. Bounded: a pod socket that does not take
// the client's bytes stops the connection's reading; a client that does not take the
// pods' bytes stops their reading.
// The Python client speaks another protocol, channels in a WebSocket (PortForwardChannels).
import Foundation
import MinikAPI
import NIOCore
import NIOPosix
import NIOWebSocket

/// One forwarded connection's pod side, on the client connection's loop.
final class PodSocket: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    let onData: (ByteBuffer) -> Void
    let onClose: () -> Void
    let onWritable: (Bool) -> Void

    init(onData: @escaping (ByteBuffer) -> Void, onClose: @escaping () -> Void, onWritable: @escaping (Bool) -> Void) {
        self.onData = onData
        self.onClose = onClose
        self.onWritable = onWritable
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) { onData(unwrapInboundIn(data)) }
    func channelInactive(context: ChannelHandlerContext) { onClose() }
    func channelWritabilityChanged(context: ChannelHandlerContext) { onWritable(context.channel.isWritable) }
    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }

    /// Wraps a connected socket in a channel on `loop`.
    static func open(_ fd: Int32, on loop: EventLoop, handler: PodSocket) -> EventLoopFuture<Channel> {
        ClientBootstrap(group: loop)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(handler) } }
            .withConnectedSocket(fd)
    }
}

/// Writes to a pod socket that may not be open yet: bytes wait until it is (the caller
/// stops reading its client while `waitingBytes` grow); a socket that could not be made
/// takes nothing. A class: a write can call back synchronously (writability), and the
/// callbacks read the collection the socket is kept in, which a mutating access to a
/// value inside it would hold exclusively (Swift traps on that overlap).
final class PendingPodSocket {
    var channel: Channel?
    var waiting: [ByteBuffer] = []
    var waitingBytes = 0
    var halfClose = false
    var failed = false

    /// false: the caller should stop reading until the socket drains.
    func write(_ b: ByteBuffer) -> Bool {
        if failed { return true }
        guard let channel else {
            waiting.append(b)
            waitingBytes += b.readableBytes
            return waitingBytes < 1024 * 1024
        }
        channel.writeAndFlush(b, promise: nil)
        return channel.isWritable
    }

    func opened(_ ch: Channel) {
        channel = ch
        for b in waiting { ch.write(b, promise: nil) }
        ch.flush()
        waiting = []
        waitingBytes = 0
        if halfClose { Self.shutDownOutput(ch) }
    }

    /// Takes nothing more (its connection could not be made).
    func fail() {
        failed = true
        waiting = []
        waitingBytes = 0
    }

    /// Takes more now: open and under its high-water mark, or failed.
    var drained: Bool { failed || (channel?.isWritable ?? (waitingBytes < 1024 * 1024)) }

    func closeOutput() {
        guard let channel else { halfClose = true; return }
        Self.shutDownOutput(channel)
    }

    /// shutdown(SHUT_WR) once what was written before has gone out.
    static func shutDownOutput(_ ch: Channel) {
        ch.writeAndFlush(ch.allocator.buffer(capacity: 0)).whenComplete { _ in ch.close(mode: .output, promise: nil) }
    }
}

final class PortForwardPairs: SPDYService, @unchecked Sendable {
    struct Pair {
        var port: Int
        var errorStream: UInt32?
        var dataStream: UInt32?
        let pod = PendingPodSocket()
        var started = false
    }

    unowned let connection: SPDYConnection
    let loop: EventLoop
    let backend: APIBackend
    let request: StreamRequest
    var pairs: [String: Pair] = [:]
    var streamPair: [UInt32: String] = [:]
    var readingPaused = false

    init(_ connection: SPDYConnection, loop: EventLoop, backend: APIBackend, request: StreamRequest) {
        self.connection = connection
        self.loop = loop
        self.backend = backend
        self.request = request
    }

    func open(_ id: UInt32, headers: [String: String]) -> Bool {
        guard let p = headers["port"], let port = Int(p), (1...65535).contains(port),
              let type = headers["streamtype"], type == "error" || type == "data" else { return false }
        // Without a requestID kubelet pairs a data stream with the error stream just before it.
        let key = headers["requestid"] ?? String(type == "error" ? id : id &- 2)
        var pair = pairs[key] ?? Pair(port: port)
        if type == "error" {
            guard pair.errorStream == nil else { return false }
            pair.errorStream = id
        } else {
            guard pair.dataStream == nil else { return false }
            pair.dataStream = id
        }
        guard pairs.count < 1024 || pairs[key] != nil else { return false }
        if pairs[key] == nil {
            // kubelet's streamCreationTimeout: the other stream of the pair has 30 s.
            loop.scheduleTask(in: .seconds(30)) { [weak self] in
                guard let self, let pair = pairs[key], !pair.started else { return }
                if let e = pair.errorStream {
                    var b = ByteBuffer()
                    b.writeString("timed out waiting for streams of request \(key)")
                    connection.sendData(e, b)
                    connection.reset(e)
                }
                if let d = pair.dataStream { connection.reset(d) }
                drop(key)
            }
        }
        pairs[key] = pair
        streamPair[id] = key
        return true
    }

    func replied(_ id: UInt32) {
        guard let key = streamPair[id], var pair = pairs[key], !pair.started,
              let errorStream = pair.errorStream, let dataStream = pair.dataStream else { return }
        pair.started = true
        pairs[key] = pair
        // The connect may wait (a pod whose backlog is full): off the event loop. The
        // client's bytes meanwhile wait in the pair's PendingPodSocket.
        let (backend, request, port, loop) = (backend, request, pair.port, loop)
        DispatchQueue.global().async { [weak self] in
            let result: Result<Int32, APIError>
            do throws(APIError) { result = .success(try backend.connect(namespace: request.namespace, pod: request.pod, port: port)) } catch {
                result = .failure(error)
            }
            loop.execute {
                guard let self else {
                    if case .success(let fd) = result { close(fd) }
                    return
                }
                self.connected(key, result, errorStream: errorStream, dataStream: dataStream)
            }
        }
    }

    func connected(_ key: String, _ result: Result<Int32, APIError>, errorStream: UInt32, dataStream: UInt32) {
        let fd: Int32
        do { fd = try result.get() } catch {
            // kubelet's words, as text on the error stream (kubectl prints them).
            connection.sendData(errorStream, ByteBuffer(string: error.message))
            connection.reset(dataStream)
            connection.reset(errorStream)
            drop(key)
            return
        }
        guard pairs[key] != nil else { close(fd); return }
        let handler = PodSocket(
            onData: { [weak self] b in
                guard let self else { return }
                connection.sendData(dataStream, b)
                if connection.transport?.isWritable == false { pausePods(true) }
            },
            onClose: { [weak self] in
                guard let self else { return }
                connection.finish(dataStream)
                connection.finish(errorStream)
                drop(key)
            },
            onWritable: { [weak self] writable in self?.podWritable(writable) })
        PodSocket.open(fd, on: loop, handler: handler).whenComplete { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let ch):
                guard pairs[key] != nil else { ch.close(promise: nil); return }
                pairs[key]?.pod.opened(ch)
                podWritable(ch.isWritable)
                if connection.transport?.isWritable == false { ch.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in } }
            case .failure:
                // (NIO closed the descriptor.)
                connection.finish(dataStream)
                connection.finish(errorStream)
                drop(key)
            }
        }
    }

    func data(_ id: UInt32, _ payload: ByteBuffer) {
        guard let key = streamPair[id], pairs[key]?.dataStream == id else { return }
        if pairs[key]?.pod.write(payload) == false { pause(true) }
    }

    func finished(_ id: UInt32) {
        guard let key = streamPair[id], pairs[key]?.dataStream == id else { return }
        pairs[key]?.pod.closeOutput()
    }

    func reset(_ id: UInt32) {
        guard let key = streamPair[id], let pair = pairs[key] else { return }
        if pair.dataStream == id {
            pair.pod.channel?.close(promise: nil)
            if let e = pair.errorStream { connection.finish(e) }
            drop(key)
        }
    }

    func drop(_ key: String) {
        guard let pair = pairs.removeValue(forKey: key) else { return }
        if let e = pair.errorStream { streamPair[e] = nil; connection.forget(e) }
        if let d = pair.dataStream { streamPair[d] = nil; connection.forget(d) }
        // (A pod socket still opening is closed by the open's completion.)
        pair.pod.channel?.close(promise: nil)
        podWritable(true)
    }

    func podWritable(_ writable: Bool) {
        if writable && pairs.values.allSatisfy({ $0.pod.drained }) { pause(false) }
    }

    func pause(_ on: Bool) {
        guard readingPaused != on else { return }
        readingPaused = on
        connection.transport?.setReading(!on)
    }

    func pausePods(_ on: Bool) {
        for p in pairs.values { p.pod.channel?.setOption(ChannelOptions.autoRead, value: !on).whenFailure { _ in } }
    }

    func writabilityChanged() { pausePods(connection.transport?.isWritable == false) }

    func closed() {
        for p in pairs.values { p.pod.channel?.close(promise: nil) }
        pairs = [:]
        streamPair = [:]
    }
}

/// Port-forward over WebSocket channels (the Python client, v4.channel.k8s.io): for the
/// i-th port of `ports`, channel 2i carries data both ways and 2i+1 errors; each opens
/// with the port as two little-endian bytes. One connection per port, made at once;
/// the WebSocket closes when every port's connection has ended.
final class PortForwardChannels: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame
    let request: StreamRequest
    let backend: APIBackend
    var context: ChannelHandlerContext?
    var pods: [PendingPodSocket] = []
    var live = 0
    var closing = false

    init(_ request: StreamRequest, backend: APIBackend) {
        self.request = request
        self.backend = backend
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        pods = request.ports.map { _ in PendingPodSocket() }
        guard !request.ports.isEmpty else {
            closeConnection()
            return
        }
        // Every port's connection is made at once, off the event loop (a connect may
        // wait); the WebSocket closes when all of them have ended.
        live = request.ports.count
        let (backend, request, loop) = (backend, request, context.eventLoop)
        for (i, port) in request.ports.enumerated() {
            guard let data = UInt8(exactly: 2 * i), let errors = UInt8(exactly: 2 * i + 1) else { break }
            var portBytes = ByteBuffer()
            portBytes.writeInteger(UInt16(port), endianness: .little)
            send(data, portBytes)
            send(errors, portBytes)
            DispatchQueue.global().async { [weak self] in
                let result: Result<Int32, APIError>
                do throws(APIError) { result = .success(try backend.connect(namespace: request.namespace, pod: request.pod, port: port)) } catch {
                    result = .failure(error)
                }
                loop.execute {
                    guard let self, !self.closing else {
                        if case .success(let fd) = result { close(fd) }
                        return
                    }
                    self.connected(i, result, data: data, errors: errors)
                }
            }
        }
    }

    func connected(_ i: Int, _ result: Result<Int32, APIError>, data: UInt8, errors: UInt8) {
        guard let context else { return }
        guard case .success(let fd) = result else {
            if case .failure(let error) = result { send(errors, ByteBuffer(string: error.message)) }
            pods[i].fail()
            portEnded()
            return
        }
        let handler = PodSocket(
            onData: { [weak self] b in
                guard let self, let context = self.context else { return }
                send(data, b)
                if !context.channel.isWritable { pods.forEach { $0.channel?.setOption(ChannelOptions.autoRead, value: false).whenFailure { _ in } } }
            },
            onClose: { [weak self] in self?.portEnded() },
            onWritable: { [weak self] w in
                if w, let self, self.pods.allSatisfy(\.drained) { self.setReading(true) }
            })
        PodSocket.open(fd, on: context.eventLoop, handler: handler).whenComplete { [weak self] result in
            guard let self else { return }
            switch result {
            case .success(let ch):
                if closing { ch.close(promise: nil) } else { pods[i].opened(ch) }
                if pods.allSatisfy(\.drained) { setReading(true) }
            case .failure:
                // (NIO closed the descriptor.)
                pods[i].fail()
                portEnded()
            }
        }
    }

    func portEnded() {
        live -= 1
        if live == 0 { closeConnection() }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .text:
            var d = frame.unmaskedData
            guard let ch = d.readInteger(as: UInt8.self), ch % 2 == 0, Int(ch / 2) < pods.count, d.readableBytes > 0 else { return }
            if !pods[Int(ch / 2)].write(d) { setReading(false) }
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            closeConnection()
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closing = true
        pods.forEach { $0.channel?.close(promise: nil) }
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        let on = context.channel.isWritable
        pods.forEach { $0.channel?.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in } }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { return }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }

    func setReading(_ on: Bool) { context?.channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in } }

    func send(_ channel: UInt8, _ data: ByteBuffer) {
        guard let context, !closing else { return }
        context.writeAndFlush(wrapOutboundOut(ChannelMessages.frame(channel, data, context.channel.allocator)), promise: nil)
    }

    func closeConnection() {
        guard let context, !closing else { return }
        closing = true
        pods.forEach { $0.channel?.close(promise: nil) }
        ChannelMessages.close(context)
    }
}
