// exec and attach over WebSocket, as kubectl 1.31+ and the Python client speak it: the
// channel protocols v5.channel.k8s.io and v4.channel.k8s.io (apimachinery's wsstream).
// Each binary message is one channel's: its first byte is the channel (0 stdin,
// 1 stdout, 2 stderr, 3 status, 4 resize), the rest its data. The server opens with an
// empty message on the lowest channel it writes (kubelet's "connection established"),
// ends with the Status on channel 3, then closes. v5 adds the close signal: a message
// on channel 255 whose data is the channel the client has finished (stdin: its EOF).
// Resize messages carry JSON {"Width":W,"Height":H}. Pings are answered.
import Foundation
import MinikAPI
import MinikRuntime
import NIOCore
import NIOWebSocket

/// The subprotocols of each subresource, in the server's preference.
enum WebSocketProtocols {
    static let exec = ["v5.channel.k8s.io", "v4.channel.k8s.io"]
    static let portForward = ["SPDY/3.1+portforward.k8s.io", "v4.channel.k8s.io"]

    /// The first protocol the client offers that the server speaks (wsstream picks so).
    static func choose(_ offered: [String], from supported: [String]) -> String? {
        let list = offered.flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        return list.first { supported.contains($0) }
    }
}

/// The k8s channel protocols' WebSocket messages, for every handler that speaks them.
enum ChannelMessages {
    /// A binary message of one channel: its number, then the data.
    static func frame(_ channel: UInt8, _ data: ByteBuffer, _ allocator: ByteBufferAllocator) -> WebSocketFrame {
        var b = allocator.buffer(capacity: data.readableBytes + 1)
        b.writeInteger(channel)
        var d = data
        b.writeBuffer(&d)
        return WebSocketFrame(fin: true, opcode: .binary, data: b)
    }

    /// A close frame with code 1000 (kubectl reads anything else as an error), then the
    /// connection's end once it is out.
    static func close(_ context: ChannelHandlerContext) {
        var b = context.channel.allocator.buffer(capacity: 2)
        b.write(webSocketErrorCode: .normalClosure)
        let channel = context.channel
        context.writeAndFlush(NIOAny(WebSocketFrame(fin: true, opcode: .connectionClose, data: b))).whenComplete { _ in
            channel.close(promise: nil)
        }
    }
}

final class ExecWebSocket: ChannelInboundHandler, ExecClient, @unchecked Sendable {
    typealias InboundIn = WebSocketFrame
    typealias OutboundOut = WebSocketFrame

    var request: StreamRequest
    let backend: APIBackend
    /// v5: the client may send the close signal.
    let closeSignal: Bool
    var session: StreamSession?
    var starting = SessionStart()
    var context: ChannelHandlerContext?
    var closing = false

    init(_ request: StreamRequest, backend: APIBackend, protocol name: String) {
        self.request = request
        self.backend = backend
        closeSignal = name.hasPrefix("v5.")
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        // The lowest channel this session writes says the connection is up.
        send(request.stdout ? 1 : request.stderr ? 2 : 3, context.channel.allocator.buffer(capacity: 0))
        guard request.kind == .exec && request.tty else { return start() }
        starting.waitingForSize = true
        context.eventLoop.scheduleTask(in: SessionStart.sizeWait) { [self] in
            if starting.waitingForSize { start() }
        }
    }

    func start() {
        guard let context, session == nil, !closing else { return }
        starting.waitingForSize = false
        switch SessionStart.session(request, backend: backend, client: self, loop: context.eventLoop) {
        case .success(let s):
            session = s
            starting.replay(into: s)
        case .failure(let error): finish(ExecSession.failed(error))
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var frame = unwrapInboundIn(data)
        switch frame.opcode {
        case .binary, .text:
            // The Python client sends str input as text messages; the channel byte leads
            // either way (wsstream reads both alike in the binary protocols).
            var data = frame.unmaskedData
            guard let channel = data.readInteger(as: UInt8.self) else { return }
            switch channel {
            case 0:
                if let session { session.input(data) } else if !starting.keep(data) { setReading(false) }
            case 4:
                if let json = try? JSON.parse(data.readBytes(length: data.readableBytes) ?? []),
                   let w = json["Width"]?.int, let h = json["Height"]?.int,
                   let cols = UInt16(exactly: w), let rows = UInt16(exactly: h) {
                    if starting.sized(cols: cols, rows: rows, request: &request, session: session) { start() }
                }
            case 255 where closeSignal:
                if data.readInteger(as: UInt8.self) == 0 {
                    if let session { session.closeInput() } else { starting.inputClosed = true }
                }
            default: break
            }
        case .ping:
            var pong = frame.unmaskedData
            if pong.readableBytes > 125 { pong = pong.getSlice(at: pong.readerIndex, length: 125) ?? pong }
            context.writeAndFlush(wrapOutboundOut(WebSocketFrame(fin: true, opcode: .pong, data: pong)), promise: nil)
        case .connectionClose:
            closeConnection(context)
        default:
            _ = frame // pong; continuations come aggregated
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        // A session still waiting for its first window size never starts now.
        closing = true
        starting.waitingForSize = false
        session?.clientGone()
        session = nil
        context.fireChannelInactive()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        session?.clientWritabilityChanged()
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // Idle connections are the client's to end (an interactive shell may sit quiet).
        if event is IdleStateHandler.IdleStateEvent { return }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    func send(_ channel: UInt8, _ data: ByteBuffer) {
        guard let context, !closing else { return }
        context.writeAndFlush(wrapOutboundOut(ChannelMessages.frame(channel, data, context.channel.allocator)), promise: nil)
    }

    func closeConnection(_ context: ChannelHandlerContext) {
        guard !closing else { return }
        closing = true
        ChannelMessages.close(context)
    }

    // MARK: ExecClient

    func output(_ stream: UInt8, _ data: ByteBuffer) {
        // kubelet drops what the client did not ask for.
        if stream == 2 && !request.stderr { return }
        if stream == 1 && !request.stdout { return }
        send(stream, data)
    }

    func finish(_ status: JSON) {
        guard let context else { return }
        send(3, context.channel.allocator.buffer(bytes: status.serialized()))
        session = nil
        closeConnection(context)
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func setReading(_ on: Bool) {
        context?.channel.setOption(ChannelOptions.autoRead, value: on).whenFailure { _ in }
    }

    func abort() {
        session = nil
        context?.close(promise: nil)
    }
}
