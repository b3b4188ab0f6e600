// The API's transport: HTTP/1.1 over TLS (SwiftNIO, swift-nio-ssl) on loopback only.
// Every request is authenticated: a client certificate the cluster's CA issued (checked
// with swift-certificates' RFC 5280 verifier; a missing or foreign one gets 401, as the
// apiserver answers), or a bearer token the server knows.
// Bounded: a body over 3 MiB gets 413; a watch whose client stops reading is closed once
// 16 MiB wait for it; idle connections close after 5 minutes, handshakes after 10 s.
// Reads are answered on the event loop; writes go to one serial queue (the runtime
// applies one change at a time) and their answer comes back on the loop.
import Dispatch
import Foundation
import MinikAPI
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import NIOTLS
import X509

public struct APIServerError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(description: String) { self.description = description }
}

/// Who a connection authenticated as (set during the TLS handshake).
final class ConnectionAuth: @unchecked Sendable {
    private let lock = NSLock()
    private var _user: String?
    var user: String? {
        get { lock.lock(); defer { lock.unlock() }; return _user }
        set { lock.lock(); _user = newValue; lock.unlock() }
    }
}

public final class APIServer: @unchecked Sendable {
    public let handler: APIHandler
    let group: MultiThreadedEventLoopGroup
    let context: NIOSSLContext
    let ca: Certificate
    let writes = DispatchQueue(label: "minik.api.writes")
    private let tokensLock = NSLock()
    private var tokens: [String: String] = [:]
    private var channels: [Channel] = []
    static let maxBody = 3 * 1024 * 1024
    static let maxPendingWatchBytes = 16 * 1024 * 1024
    static let maxConnections = 2048
    let connections = ManagedAtomicCounter()

    public init(handler: APIHandler, pki: PKIFiles) throws(APIServerError) {
        self.handler = handler
        do {
            let caPEM = try String(contentsOfFile: pki.caCert, encoding: .utf8)
            ca = try Certificate(pemEncoded: caPEM)
            let chain = try NIOSSLCertificate.fromPEMFile(pki.serverCert)
            let key = try NIOSSLPrivateKey(file: pki.serverKey, format: .pem)
            var config = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
            config.trustRoots = .certificates(try NIOSSLCertificate.fromPEMFile(pki.caCert))
            // Ask for a client certificate but let the handshake finish without a valid
            // one: the request then gets a 401 Status, which clients can print.
            config.certificateVerification = .optionalVerification
            config.applicationProtocols = ["http/1.1"]
            config.minimumTLSVersion = .tlsv12
            context = try NIOSSLContext(configuration: config)
        } catch {
            throw APIServerError(description: "cannot load the API server's certificates from \(pki.dir): \(error)")
        }
        group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
    }

    /// A bearer token and the user it authenticates (service accounts).
    public func addToken(_ token: String, user: String) {
        tokensLock.lock()
        tokens[token] = user
        tokensLock.unlock()
    }

    func user(forToken token: String) -> String? {
        tokensLock.lock()
        defer { tokensLock.unlock() }
        return tokens[token]
    }

    /// Listens on host:port (port 0: a free one); returns the port. Only loopback hosts
    /// are accepted here; a listener inside a node's namespace comes from `listen(fd:)`.
    @discardableResult
    public func listen(host: String, port: Int) throws(APIServerError) -> Int {
        guard host.hasPrefix("127.") else { throw APIServerError(description: "the API listens on loopback only, not \(host)") }
        do {
            let ch = try bootstrap().bind(host: host, port: port).wait()
            channels.append(ch)
            return ch.localAddress?.port ?? port
        } catch {
            throw APIServerError(description: "cannot listen on \(host):\(port): \(error)")
        }
    }

    /// Serves on a listening socket made elsewhere (inside a node's network namespace).
    public func listen(fd: Int32) throws(APIServerError) {
        do {
            let ch = try bootstrap().withBoundSocket(fd).wait()
            channels.append(ch)
        } catch {
            throw APIServerError(description: "cannot serve on socket \(fd): \(error)")
        }
    }

    func bootstrap() -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(ChannelOptions.writeBufferWaterMark, value: .init(low: 256 * 1024, high: 1024 * 1024))
            .childChannelInitializer { [self] channel in
                if connections.increment() > APIServer.maxConnections {
                    connections.decrement()
                    return channel.close()
                }
                channel.closeFuture.whenComplete { [connections] _ in connections.decrement() }
                let auth = ConnectionAuth()
                let ca = self.ca
                let tls = NIOSSLServerHandler(context: context) { certs, promise in
                    // Any certificate passes the handshake; only one the CA issued
                    // authenticates the requests.
                    guard let leaf = certs.first, let der = try? leaf.toDERBytes() else {
                        promise.succeed(.certificateVerified)
                        return
                    }
                    Task {
                        auth.user = await PKI.verifyClient(der: der, ca: ca)
                        promise.succeed(.certificateVerified)
                    }
                }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(readTimeout: .minutes(5)))
                    try sync.addHandler(tls)
                    // After the TLS handler: it sees the handshake's completion (events go
                    // towards the tail), and cancels its timer then.
                    try sync.addHandler(HandshakeTimeout())
                    let http = HTTPHandler(server: self, auth: auth)
                    try sync.configureHTTPServerPipeline(withServerUpgrade: (upgraders: upgraders(auth, http: http), completionHandler: { _ in }),
                                                         withErrorHandling: true)
                    try sync.addHandler(http)
                }
            }
    }
}

/// A counter shared by the event loops.
final class ManagedAtomicCounter: @unchecked Sendable {
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int { lock.lock(); defer { lock.unlock() }; value += 1; return value }
    func decrement() { lock.lock(); value -= 1; lock.unlock() }
}

/// Closes a connection whose TLS handshake has not finished in 10 s.
final class HandshakeTimeout: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny
    var task: Scheduled<Void>?

    func handlerAdded(context: ChannelHandlerContext) {
        let ch = context.channel
        task = context.eventLoop.scheduleTask(in: .seconds(10)) { ch.close(promise: nil) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? TLSUserEvent, case .handshakeCompleted = e {
            task?.cancel()
            context.pipeline.syncOperations.removeHandler(self, promise: nil)
        } else if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func handlerRemoved(context: ChannelHandlerContext) { task?.cancel() }
}
