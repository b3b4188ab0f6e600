// The dashboard: a small page on 127.0.0.1 that draws the cluster (the graph, through
// Graphviz), colours the pods by state as the watch API reports them, and traces a
// packet's path when two of them are clicked.
//
// Plain HTTP on loopback, like `kubectl proxy`, and every request authenticated: the URL
// `minik dashboard` prints carries a random token; the first request trades it for an
// HttpOnly, SameSite=Strict cookie. Only GET is served: the page, the drawing, a trace,
// and the Kubernetes API's reads and watches (as the read-only user minik:dashboard,
// through the same handler as the API itself). Anything else gets 401, 404 or 405.
import Dispatch
import Foundation
import MinikAPI
import NIOCore
import NIOHTTP1
import NIOPosix

public final class DashboardServer: @unchecked Sendable {
    /// What the page asks of the cluster, answered off the event loop.
    public struct Providers: Sendable {
        /// The cluster drawn as SVG, or why not.
        public var graphSVG: @Sendable () -> Result<[UInt8], APIServerError>
        /// A trace as JSON, from the query (from, to, port, namespace): status and body.
        public var trace: @Sendable (_ query: [String: String]) -> (Int, [UInt8])
        public var cluster: String

        public init(cluster: String, graphSVG: @escaping @Sendable () -> Result<[UInt8], APIServerError>,
                    trace: @escaping @Sendable (_ query: [String: String]) -> (Int, [UInt8])) {
            self.cluster = cluster
            self.graphSVG = graphSVG
            self.trace = trace
        }
    }

    public static let user = "minik:dashboard"
    public static let cookie = "minik-dashboard"
    let api: APIServer
    let providers: Providers
    public let token: String
    let work = DispatchQueue(label: "minik.dashboard", attributes: .concurrent)
    private var channel: Channel?

    public init(api: APIServer, providers: Providers) {
        self.api = api
        self.providers = providers
        var rng = SystemRandomNumberGenerator()
        token = (0..<4).map { _ in String(rng.next() as UInt64, radix: 16) }.joined()
    }

    /// Listens on 127.0.0.1:port (0: a free one); returns the port.
    public func listen(port: Int) throws(APIServerError) -> Int {
        let bootstrap = ServerBootstrap(group: api.group)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { [self] channel in
                if api.connections.increment() > APIServer.maxConnections {
                    api.connections.decrement()
                    return channel.close()
                }
                channel.closeFuture.whenComplete { [connections = api.connections] _ in connections.decrement() }
                let auth = ConnectionAuth()
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(readTimeout: .minutes(5)))
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(DashboardGate(server: self, auth: auth))
                    try sync.addHandler(HTTPHandler(server: api, auth: auth))
                }
            }
        do {
            let ch = try bootstrap.bind(host: "127.0.0.1", port: port).wait()
            channel = ch
            return ch.localAddress?.port ?? port
        } catch {
            throw APIServerError(description: "the dashboard cannot listen on 127.0.0.1:\(port): \(error)")
        }
    }

    public func close() { channel?.close(promise: nil) }

    /// The token of a request: its cookie, or `?token=` (only the page's URL carries it).
    func authorized(_ h: HTTPRequestHead, query: [String: String]) -> (ok: Bool, fromQuery: Bool) {
        for c in h.headers["cookie"].flatMap({ $0.split(separator: ";") }) {
            let kv = c.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1).map(String.init)
            if kv.count == 2, kv[0] == Self.cookie, constantTimeEqual(kv[1], token) { return (true, false) }
        }
        if let t = query["token"], constantTimeEqual(t, token) { return (true, true) }
        return (false, false)
    }

    func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in x.indices { diff |= x[i] ^ y[i] }
        return diff == 0
    }

}

/// Answers the page's own requests and lets only authenticated API reads through.
final class DashboardGate: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let server: DashboardServer
    let auth: ConnectionAuth
    /// The parts of a request answered here (not passed on) until its end.
    var swallowing = false

    init(server: DashboardServer, auth: ConnectionAuth) {
        self.server = server
        self.auth = auth
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        guard case .head(let h) = part else {
            if !swallowing { context.fireChannelRead(data) }
            if case .end = part { swallowing = false }
            return
        }
        let (path, query) = APIRequest.split(h.uri)
        let (ok, fromQuery) = server.authorized(h, query: query)
        auth.user = nil
        swallowing = true
        guard ok else {
            respond(context, h, 401, "text/plain; charset=utf-8", Array("401 Unauthorized: open the URL `minik dashboard` prints\n".utf8))
            return
        }
        guard h.method == .GET || h.method == .HEAD else {
            respond(context, h, 405, "text/plain; charset=utf-8", Array("405 Method Not Allowed: the dashboard only reads\n".utf8))
            return
        }
        if fromQuery && (path == "/" || path == "/index.html") {
            // Trade the token in the URL for a cookie, and drop it from the address bar.
            var headers = HTTPHeaders()
            headers.add(name: "Set-Cookie", value: "\(DashboardServer.cookie)=\(server.token); HttpOnly; SameSite=Strict; Path=/")
            headers.add(name: "Location", value: "/")
            respond(context, h, 303, "text/plain; charset=utf-8", Array("see /\n".utf8), extra: headers)
            return
        }
        switch path {
        case "/", "/index.html":
            respond(context, h, 200, "text/html; charset=utf-8", Array(DashboardPage.html(cluster: server.providers.cluster).utf8))
        case "/minik/graph.svg":
            offLoop(context, h) { [providers = server.providers] in
                switch providers.graphSVG() {
                case .success(let svg): return (200, "image/svg+xml", svg)
                case .failure(let e): return (503, "text/plain; charset=utf-8", Array("\(e.description)\n".utf8))
                }
            }
        case "/minik/trace":
            offLoop(context, h) { [providers = server.providers] in
                let (code, body) = providers.trace(query)
                return (code, "application/json", body)
            }
        default:
            if path.hasPrefix("/api/") || path == "/api" || path.hasPrefix("/apis") || path == "/version" {
                // The Kubernetes API's reads and watches, as the dashboard's read-only user.
                auth.user = DashboardServer.user
                swallowing = false
                context.fireChannelRead(data)
                return
            }
            respond(context, h, 404, "text/plain; charset=utf-8", Array("404 Not Found\n".utf8))
        }
    }

    func offLoop(_ context: ChannelHandlerContext, _ h: HTTPRequestHead, _ work: @escaping @Sendable () -> (Int, String, [UInt8])) {
        let loop = context.eventLoop
        let box = NIOLoopBound(context, eventLoop: loop)
        server.work.async {
            let (code, type, body) = work()
            loop.execute { [self] in
                let ctx = box.value
                guard ctx.channel.isActive else { return }
                respond(ctx, h, code, type, body)
            }
        }
    }

    func respond(_ context: ChannelHandlerContext, _ h: HTTPRequestHead, _ code: Int, _ type: String, _ body: [UInt8], extra: HTTPHeaders = [:]) {
        var headers = extra
        headers.add(name: "Content-Type", value: type)
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        // The page runs only its own script and talks only to this origin.
        headers.add(name: "Content-Security-Policy", value: "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:")
        headers.add(name: "X-Frame-Options", value: "DENY")
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        context.write(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: h.version, status: HTTPResponseStatus(statusCode: code), headers: headers))), promise: nil)
        if h.method != .HEAD { context.write(NIOAny(HTTPServerResponsePart.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil) }
        context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil)), promise: nil)
    }
}
