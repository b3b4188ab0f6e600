// The server's side of a SPDY/3.1 connection as kubelet's streaming server runs it
// (apimachinery httpstream/spdy over spdystream): the client opens every stream (odd
// ids, increasing), the server answers each with an empty SYN_REPLY before it sends
// data on it, closes its side with an empty DATA frame carrying FIN, echoes the
// client's PINGs, and never speaks first (the client drops bytes that arrive with the
// 101). What the streams mean is a SPDYService's: port-forward pairs or an exec.
// The bytes come from the TLS connection itself (SPDYOverTCP) or from the binary
// messages of a WebSocket, concatenated (SPDYOverWebSocket: kubectl splits one frame
// over several messages).
import Foundation
import NIOCore
import NIOWebSocket

/// What a SPDY connection's streams are for.
protocol SPDYService: AnyObject {
    /// A stream the client opens: true accepts it (an empty SYN_REPLY follows, then
    /// `replied`), false refuses it (RST_STREAM CANCEL).
    func open(_ id: UInt32, headers: [String: String]) -> Bool
    func replied(_ id: UInt32)
    func data(_ id: UInt32, _ payload: ByteBuffer)
    /// The client closed its side of the stream (FIN).
    func finished(_ id: UInt32)
    /// The client reset the stream.
    func reset(_ id: UInt32)
    /// The connection can take more output again (or not).
    func writabilityChanged()
    /// The connection is gone.
    func closed()
}

/// How a SPDY connection reaches its client.
protocol SPDYTransport: AnyObject {
    func write(_ bytes: ByteBuffer)
    var isWritable: Bool { get }
    func setReading(_ on: Bool)
    /// Ends the connection once what was written is sent.
    func close()
    /// Ends it now.
    func abort()
}

final class SPDYConnection {
    let framer = SPDYFramer()
    weak var transport: SPDYTransport?
    var service: SPDYService?
    var input = ByteBuffer()
    var lastClientStream: UInt32 = 0
    var open: Set<UInt32> = []
    var closed = false

    init(transport: SPDYTransport) { self.transport = transport }

    /// Bytes from the client; a protocol error ends the connection.
    func received(_ bytes: inout ByteBuffer) {
        guard !closed else { return }
        input.writeBuffer(&bytes)
        do {
            while let frame = try framer.decode(&input) { handle(frame) }
        } catch {
            goAway(status: 1)
            return
        }
        input.discardReadBytes()
    }

    func handle(_ frame: SPDYFrame) {
        switch frame {
        case .synStream(let id, let headers, let fin):
            guard id & 1 == 1, id > lastClientStream else {
                send(.rstStream(id: id, status: SPDYFrame.protocolError))
                return
            }
            lastClientStream = id
            guard let service, service.open(id, headers: headers) else {
                send(.rstStream(id: id, status: SPDYFrame.cancel))
                return
            }
            open.insert(id)
            send(.synReply(id: id, headers: [:], fin: false))
            service.replied(id)
            if fin { service.finished(id) }
        case .data(let id, let fin, let payload):
            guard open.contains(id) else { return }
            if payload.readableBytes > 0 { service?.data(id, payload) }
            if fin { service?.finished(id) }
        case .headers(let id, _, let fin):
            if fin, open.contains(id) { service?.finished(id) }
        case .rstStream(let id, _):
            if open.remove(id) != nil { service?.reset(id) }
        case .ping(let id):
            // The client's pings (odd ids) are echoed; the server sends none.
            if id & 1 == 1 { send(.ping(id: id)) }
        case .goAway:
            shutDown()
        case .synReply, .settings, .windowUpdate:
            break
        }
    }

    func send(_ frame: SPDYFrame) {
        guard !closed, let transport else { return }
        var out = ByteBuffer()
        framer.encode(frame, into: &out)
        transport.write(out)
    }

    func sendData(_ id: UInt32, _ payload: ByteBuffer, fin: Bool = false) {
        guard open.contains(id) else { return }
        send(.data(id: id, fin: fin, payload: payload))
    }

    /// Closes the server's side of a stream.
    func finish(_ id: UInt32) {
        guard open.contains(id) else { return }
        send(.data(id: id, fin: true, payload: ByteBuffer()))
    }

    func reset(_ id: UInt32) {
        guard open.remove(id) != nil else { return }
        send(.rstStream(id: id, status: SPDYFrame.cancel))
    }

    /// Forgets a stream both sides are done with.
    func forget(_ id: UInt32) { open.remove(id) }

    func goAway(status: UInt32 = 0) {
        send(.goAway(lastGood: lastClientStream, status: status))
        shutDown()
    }

    /// The connection ends: the service lets go of everything it holds.
    func shutDown() {
        guard !closed else { return }
        closed = true
        service?.closed()
        service = nil
        transport?.close()
    }
}

/// SPDY straight on the connection, after `Upgrade: SPDY/3.1`.
final class SPDYOverTCP: ChannelInboundHandler, SPDYTransport, @unchecked Sendable {
    typealias InboundIn = ByteBuffer
    var connection: SPDYConnection!
    var context: ChannelHandlerContext?
    let makeService: (SPDYConnection, EventLoop) -> SPDYService

    init(makeService: @escaping (SPDYConnection, EventLoop) -> SPDYService) {
        self.makeService = makeService
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        connection = SPDYConnection(transport: self)
        connection.service = makeService(connection, context.eventLoop)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        connection.received(&bytes)
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.shutDown()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection.service?.writabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { return }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }

    func write(_ bytes: ByteBuffer) { context?.writeAndFlush(NIOAny(bytes), promise: nil) }
    var isWritable: Bool { context?.channel.isWritable ?? false }
    func setReading(_ on: Bool) { context?.channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in } }
    func abort() { context?.close(promise: nil) }
    func close() {
        guard let context else { return }
        let ch = context.channel
        context.writeAndFlush(NIOAny(ByteBuffer())).whenComplete { _ in ch.close(promise: nil) }
    }
}

/// SPDY carried in a WebSocket's binary messages (`SPDY/3.1+portforward.k8s.io`).
final class SPDYOverWebSocket: ChannelInboundHandler, SPDYTransport, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame
    var connection: SPDYConnection!
    var context: ChannelHandlerContext?
    let makeService: (SPDYConnection, EventLoop) -> SPDYService
    var closing = false

    init(makeService: @escaping (SPDYConnection, EventLoop) -> SPDYService) {
        self.makeService = makeService
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        connection = SPDYConnection(transport: self)
        connection.service = makeService(connection, context.eventLoop)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary:
            var bytes = frame.unmaskedData
            connection.received(&bytes)
        case .ping:
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: frame.unmaskedData)), promise: nil)
        case .connectionClose:
            connection.shutDown()
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        connection.shutDown()
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        connection.service?.writabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent { return }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) { context.close(promise: nil) }

    func write(_ bytes: ByteBuffer) {
        guard !closing else { return }
        context?.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .binary, data: bytes)), promise: nil)
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }
    func setReading(_ on: Bool) { context?.channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in } }
    func abort() { context?.close(promise: nil) }

    func close() {
        guard let context, !closing else { return }
        closing = true
        ChannelMessages.close(context)
    }
}
