// One HTTP/1.1 connection: requests are collected (bounded), authenticated, handed to
// the APIHandler, and answered; watches and followed logs stream as chunked bodies
// until their timeout, the client leaving, or the client falling too far behind.
import Dispatch
import Foundation
import MinikAPI
import NIOCore
import NIOHTTP1
import NIOWebSocket

final class HTTPHandler: ChannelInboundHandler, RemovableChannelHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let server: APIServer
    let auth: ConnectionAuth
    var head: HTTPRequestHead?
    var body: [UInt8] = []
    var tooLarge = false
    /// A watch or log stream owns the connection until it ends.
    var streaming = false
    var watchID: Int?
    var timers: [Scheduled<Void>] = []
    var repeated: RepeatedTask?
    var pendingBytes = 0
    var context: ChannelHandlerContext?

    init(server: APIServer, auth: ConnectionAuth) {
        self.server = server
        self.auth = auth
    }

    func handlerAdded(context: ChannelHandlerContext) { self.context = context }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body = []
            tooLarge = false
        case .body(var buf):
            if body.count + buf.readableBytes > APIServer.maxBody {
                tooLarge = true
            } else if let bytes = buf.readBytes(length: buf.readableBytes) {
                body += bytes
            }
        case .end:
            guard let h = head, !streaming else { return }
            head = nil
            if tooLarge {
                respond(context, h, 413, APIError(413, "RequestEntityTooLarge", "the request body is larger than 3 MiB").status, close: true)
                return
            }
            handle(context, h)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent, !streaming {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopStream()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // A declined upgrade is answered over HTTP (the request follows the error).
        if error is NIOWebSocketUpgradeError || error is UpgradeDeclined { return }
        context.close(promise: nil)
    }

    func handle(_ context: ChannelHandlerContext, _ h: HTTPRequestHead) {
        guard let user = server.authenticate(h, auth) else {
            respond(context, h, 401, APIError(401, "Unauthorized", "Unauthorized").status, close: false)
            return
        }
        let (path, query) = APIRequest.split(h.uri)
        let req = APIRequest(method: h.method.rawValue, path: path, query: query,
                             accept: h.headers.first(name: "accept") ?? "application/json",
                             contentType: h.headers.first(name: "content-type") ?? "", body: body, user: user, uri: h.uri)
        body = []
        if h.method == .GET {
            finish(context, h, server.handler.handle(req))
            return
        }
        // Changes run one at a time, off the event loop.
        let loop = context.eventLoop
        let handler = server.handler
        server.writes.async {
            let response = handler.handle(req)
            loop.execute { [self] in
                guard let ctx = self.context, ctx.channel.isActive else { return }
                self.finish(ctx, h, response)
            }
        }
    }

    func finish(_ context: ChannelHandlerContext, _ h: HTTPRequestHead, _ response: APIResponse) {
        switch response {
        case .json(let code, let body, let type, let warnings):
            if type == "text/plain", let s = body.string {
                respond(context, h, code, bytes: Array(s.utf8), contentType: "text/plain; charset=utf-8")
            } else {
                respond(context, h, code, bytes: body.serialized(), contentType: type, warnings: warnings)
            }
        case .watch(let plan): startWatch(context, h, plan)
        case .logs(let plan): startLogs(context, h, plan)
        }
    }

    func respond(_ context: ChannelHandlerContext, _ h: HTTPRequestHead, _ code: Int, _ status: JSON, close: Bool) {
        respond(context, h, code, bytes: status.serialized(), contentType: "application/json", close: close)
    }

    func respond(_ context: ChannelHandlerContext, _ h: HTTPRequestHead, _ code: Int, bytes: [UInt8], contentType: String, close: Bool = false,
                 warnings: [String] = []) {
        var headers = HTTPHeaders()
        // RFC 7234 warn-code 299, as the apiserver sends them; kubectl prints "Warning: ...".
        for w in warnings.prefix(20) {
            let text = w.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: " ")
            headers.add(name: "Warning", value: "299 - \"\(text)\"")
        }
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(bytes.count))
        headers.add(name: "Cache-Control", value: "no-cache, private")
        let keepAlive = h.isKeepAlive && !close
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: HTTPResponseStatus(statusCode: code), headers: headers))), promise: nil)
        if h.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: nil)
        }
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
        if !keepAlive { done.futureResult.whenComplete { [channel = context.channel] _ in channel.close(promise: nil) } }
    }

    // MARK: streams

    func startStream(_ context: ChannelHandlerContext, _ h: HTTPRequestHead, contentType: String) {
        streaming = true
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Cache-Control", value: "no-cache, private")
        headers.add(name: "Transfer-Encoding", value: "chunked")
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: h.version, status: .ok, headers: headers))), promise: nil)
    }

    /// Writes a chunk; a client that stopped reading is dropped past the bound.
    func send(_ bytes: [UInt8]) {
        guard let context, streaming else { return }
        pendingBytes += bytes.count
        if pendingBytes > APIServer.maxPendingWatchBytes {
            stopStream()
            context.close(promise: nil)
            return
        }
        let p = context.eventLoop.makePromise(of: Void.self)
        p.futureResult.whenComplete { [self, n = bytes.count] _ in pendingBytes -= n }
        context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: bytes)))), promise: p)
    }

    func endStream() {
        guard let context, streaming else { return }
        stopStream()
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        // Go's client reuses the connection after a finished chunked body; so may others.
    }

    func stopStream() {
        streaming = false
        if let id = watchID { server.handler.store.cancel(watch: id) }
        watchID = nil
        timers.forEach { $0.cancel() }
        timers = []
        repeated?.cancel()
        repeated = nil
    }

    func startWatch(_ context: ChannelHandlerContext, _ h: HTTPRequestHead, _ plan: WatchPlan) {
        let loop = context.eventLoop
        var first = true
        startStream(context, h, contentType: "application/json")
        do {
            let (id, replay) = try server.handler.store.watch(plan.filter, from: plan.from) { [self] events in
                loop.execute {
                    guard self.streaming else { return }
                    var out: [UInt8] = []
                    for e in events {
                        out += APIHandler.watchLine(e, plan: plan, first: first)
                        first = false
                    }
                    self.send(out)
                }
            }
            watchID = id
            var out: [UInt8] = []
            for e in replay {
                out += APIHandler.watchLine(e, plan: plan, first: first)
                first = false
            }
            if !out.isEmpty { send(out) }
        } catch {
            let status = APIError(error.gone ? 410 : 500, error.gone ? "Expired" : "InternalError", error.message).status
            send(JSON.object(["type": "ERROR", "object": status]).serialized() + [10])
            endStream()
            return
        }
        timers.append(loop.scheduleTask(in: .seconds(Int64(plan.timeoutSeconds))) { [self] in endStream() })
        if plan.bookmarks {
            repeated = loop.scheduleRepeatedTask(initialDelay: .seconds(30), delay: .seconds(30)) { [self] _ in
                guard streaming else { return }
                send(APIHandler.watchLine(APIHandler.bookmark(server.handler.store.currentRevision, plan: plan), plan: plan, first: false))
            }
        }
    }

    func startLogs(_ context: ChannelHandlerContext, _ h: HTTPRequestHead, _ plan: LogPlan) {
        guard let fh = FileHandle(forReadingAtPath: plan.path) else {
            respond(context, h, 400, APIError(400, "BadRequest", "container \"\(plan.container)\" in pod \"\(plan.pod)\" has no logs yet").status, close: false)
            return
        }
        var data = fh.readDataToEndOfFile()
        if let n = plan.tailLines {
            var lines = data.split(separator: 10, omittingEmptySubsequences: false)
            if lines.last?.isEmpty == true { lines.removeLast() }
            data = Data(lines.suffix(max(0, n)).map { Data($0) + [10] }.joined())
        }
        if let limit = plan.limitBytes, data.count > limit { data = data.prefix(limit) }
        guard plan.follow else {
            try? fh.close()
            respond(context, h, 200, bytes: [UInt8](data), contentType: "text/plain")
            return
        }
        startStream(context, h, contentType: "text/plain")
        if !data.isEmpty { send([UInt8](data)) }
        var handle = fh
        repeated = context.eventLoop.scheduleRepeatedTask(initialDelay: .milliseconds(100), delay: .milliseconds(100)) { [self] _ in
            guard streaming else { try? handle.close(); return }
            // Stay behind a slow reader: read only when what was sent has drained.
            guard pendingBytes < 1024 * 1024 else { return }
            let more = handle.readData(ofLength: 256 * 1024)
            if !more.isEmpty { send([UInt8](more)); return }
            var now = stat(), open = stat()
            if stat(plan.path, &now) == 0, fstat(handle.fileDescriptor, &open) == 0, now.st_ino != open.st_ino,
               let next = FileHandle(forReadingAtPath: plan.path) {
                try? handle.close()
                handle = next
                return
            }
            if plan.finished?() == true {
                try? handle.close()
                endStream()
            }
        }
    }
}
