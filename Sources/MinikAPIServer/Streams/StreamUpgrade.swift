// Which requests leave HTTP: a pod's exec, attach or portforward asked with
// `Upgrade: websocket` (kubectl 1.31+, the Python client) or `Upgrade: SPDY/3.1` (older
// kubectl, or KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false). The connection is upgraded only
// for an authenticated client whose pod (and container) can be served now, in a
// protocol both sides speak; any other request goes on to the HTTP handler, which
// answers with the Status saying why (401, 404 pod not found, 400 container not
// running, 400 "Upgrade request required").
import Foundation
import MinikAPI
import NIOCore
import NIOHTTP1
import NIOWebSocket

/// Why an upgrade was declined (the request is then answered over HTTP).
struct UpgradeDeclined: Error {}

extension APIServer {
    /// The user a request authenticates as: the connection's client certificate, else
    /// its bearer token.
    func authenticate(_ h: HTTPRequestHead, _ auth: ConnectionAuth) -> String? {
        if let user = auth.user { return user }
        if let a = h.headers.first(name: "authorization"), a.hasPrefix("Bearer ") {
            return user(forToken: String(a.dropFirst("Bearer ".count)).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }

    /// The stream a request asks for, when it may have one now.
    func streamRequest(_ h: HTTPRequestHead, _ auth: ConnectionAuth) -> StreamRequest? {
        guard authenticate(h, auth) != nil, let backend = handler.backend,
              let r = try? StreamRequest.parse(h.uri) else { return nil }
        do { try backend.checkStream(r) } catch { return nil }
        return r
    }

    func upgraders(_ auth: ConnectionAuth, http: HTTPHandler) -> [HTTPServerProtocolUpgrader] {
        let ws = NIOWebSocketServerUpgrader(
            maxFrameSize: 1 << 20, automaticErrorHandling: true,
            shouldUpgrade: { [self] channel, head in
                guard let r = streamRequest(head, auth),
                      let name = WebSocketProtocols.choose(head.headers["sec-websocket-protocol"],
                                                           from: r.kind == .portforward ? WebSocketProtocols.portForward : WebSocketProtocols.exec)
                else { return channel.eventLoop.makeSucceededFuture(nil) }
                var headers = HTTPHeaders()
                headers.add(name: "Sec-WebSocket-Protocol", value: name)
                return channel.eventLoop.makeSucceededFuture(headers)
            },
            upgradePipelineHandler: { [self] channel, head in
                channel.eventLoop.makeCompletedFuture {
                    guard let backend = handler.backend, let r = try StreamRequest.parse(head.uri),
                          let name = WebSocketProtocols.choose(head.headers["sec-websocket-protocol"],
                                                               from: r.kind == .portforward ? WebSocketProtocols.portForward : WebSocketProtocols.exec)
                    else { throw UpgradeDeclined() }
                    let sync = channel.pipeline.syncOperations
                    sync.removeHandler(http, promise: nil)
                    try sync.addHandler(NIOWebSocketFrameAggregator(minNonFinalFragmentSize: 0, maxAccumulatedFrameCount: 4096,
                                                                    maxAccumulatedFrameSize: 1 << 20))
                    switch r.kind {
                    case .exec, .attach: try sync.addHandler(ExecWebSocket(r, backend: backend, protocol: name))
                    case .portforward where name == "SPDY/3.1+portforward.k8s.io":
                        try sync.addHandler(SPDYOverWebSocket { c, loop in PortForwardPairs(c, loop: loop, backend: backend, request: r) })
                    case .portforward: try sync.addHandler(PortForwardChannels(r, backend: backend))
                    }
                }
            })
        return [ws, SPDYUpgrader(server: self, auth: auth, http: http)]
    }
}

/// `Upgrade: SPDY/3.1`: the 101 names the negotiated stream protocol in
/// X-Stream-Protocol-Version (v4.channel.k8s.io for exec and attach, portforward.k8s.io),
/// and SPDY starts on the connection itself.
struct SPDYUpgrader: HTTPServerProtocolUpgrader, @unchecked Sendable {
    let server: APIServer
    let auth: ConnectionAuth
    let http: HTTPHandler
    let supportedProtocol = "SPDY/3.1"
    let requiredUpgradeHeaders: [String] = []

    static func negotiate(_ r: StreamRequest, _ head: HTTPRequestHead) -> String? {
        let offered = head.headers["x-stream-protocol-version"].flatMap { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
        let supported = r.kind == .portforward ? ["portforward.k8s.io"] : ["v4.channel.k8s.io"]
        return offered.first { supported.contains($0) }
    }

    func buildUpgradeResponse(channel: Channel, upgradeRequest head: HTTPRequestHead, initialResponseHeaders: HTTPHeaders) -> EventLoopFuture<HTTPHeaders> {
        guard let r = server.streamRequest(head, auth), let name = Self.negotiate(r, head) else {
            return channel.eventLoop.makeFailedFuture(UpgradeDeclined())
        }
        var headers = initialResponseHeaders
        headers.add(name: "X-Stream-Protocol-Version", value: name)
        return channel.eventLoop.makeSucceededFuture(headers)
    }

    func upgrade(context: ChannelHandlerContext, upgradeRequest head: HTTPRequestHead) -> EventLoopFuture<Void> {
        context.eventLoop.makeCompletedFuture {
            guard let backend = server.handler.backend, let r = try StreamRequest.parse(head.uri) else { throw UpgradeDeclined() }
            let sync = context.pipeline.syncOperations
            sync.removeHandler(http, promise: nil)
            switch r.kind {
            case .portforward:
                try sync.addHandler(SPDYOverTCP { c, loop in PortForwardPairs(c, loop: loop, backend: backend, request: r) })
            case .exec, .attach:
                try sync.addHandler(SPDYOverTCP { c, loop in SPDYExec(c, loop: loop, backend: backend, request: r) })
            }
        }
    }
}
