// The streaming subresources without a socket: the exec/attach/portforward query as the
// apiserver parses it, the Status the error channel carries, WebSocket subprotocol choice,
// SPDY/3.1 frames byte for byte (the vectors of the protocol notes, computed with libz and
// the SPDY dictionary) and the server side of a SPDY connection against recording fakes.
import Foundation
import MinikAPI
@testable import MinikAPIServer
import NIOCore
import Testing

private func hex(_ s: String) -> [UInt8] {
    let digits = s.filter { $0.isHexDigit }
    var out: [UInt8] = []
    var i = digits.startIndex
    while i < digits.endIndex {
        let j = digits.index(i, offsetBy: 2)
        out.append(UInt8(digits[i..<j], radix: 16)!)
        i = j
    }
    return out
}

private func parseError(_ uri: String) -> APIError? {
    do throws(APIError) { _ = try StreamRequest.parse(uri); return nil } catch { return error }
}

private func encoded(_ frames: [SPDYFrame], with framer: SPDYFramer) -> [UInt8] {
    var out = ByteBuffer()
    for f in frames { framer.encode(f, into: &out) }
    return Array(out.readableBytesView)
}

/// Every whole frame in `bytes`; the buffer must be used up.
private func decodeAll(_ bytes: [UInt8], with framer: SPDYFramer = SPDYFramer()) throws(SPDYError) -> [SPDYFrame] {
    var buf = ByteBuffer(bytes: bytes)
    var frames: [SPDYFrame] = []
    while let f = try framer.decode(&buf) { frames.append(f) }
    if buf.readableBytes != 0 { throw SPDYError("\(buf.readableBytes) bytes left over") }
    return frames
}

private func decodeError(_ bytes: [UInt8]) -> SPDYError? {
    do throws(SPDYError) { _ = try decodeAll(bytes); return nil } catch { return error }
}

/// §10 of the protocol notes.
private enum Vec {
    static let clientSyn = hex("""
        80 03 00 01 00 00 00 3d 00 00 00 01 00 00 00 00 00 00 78 f9 e3 c6 a7 c2 02 25 3a 48 f9 5b 04 4e ea 16 06 16 06 40
        9a b3 08 12 5f 99 a0 74 cc 68 00 4e 89 25 45 a9 89 b9 d0 c2 86 35 15 14 15 00 00 00 00 ff ff
        """)
    static let clientSynHeaders = ["port": "8080", "requestid": "0", "streamtype": "error"]
    static let synReply1 = hex("80 03 00 02 00 00 00 14 00 00 00 01 78 f9 e3 c6 a7 c2 02 a6 23 06 00 00 00 00 ff ff")
    static let synReply3 = hex("80 03 00 02 00 00 00 0c 00 00 00 03 02 01 00 00 00 00 ff ff")
    static let ping1 = hex("80 03 00 06 00 00 00 04 00 00 00 01")
    static let rst3Cancel = hex("80 03 00 03 00 00 00 08 00 00 00 03 00 00 00 05")
    static let goAwayOK = hex("80 03 00 07 00 00 00 08 00 00 00 00 00 00 00 00")
    static let dataFin3 = hex("00 00 00 03 01 00 00 00")
    static let windowUpdate = hex("80 03 00 09 00 00 00 08 00 00 00 01 00 01 00 00")
}

@Suite("Stream requests: the exec, attach and portforward query")
struct StreamRequestTests {
    @Test("exec keeps repeated commands in order, decodes them, and reads container and flags")
    func exec() throws {
        let r = try #require(try StreamRequest.parse(
            "/api/v1/namespaces/default/pods/web-0/exec?command=sh&command=-c&command=echo%20hi+there%2Bx&container=app&stdin=true&stdout=1&stderr=&tty=False"))
        var want = StreamRequest(kind: .exec, namespace: "default", pod: "web-0")
        want.command = ["sh", "-c", "echo hi there+x"]
        want.container = "app"
        (want.stdin, want.stdout, want.stderr, want.tty) = (true, true, true, false)
        #expect(r == want)
    }

    @Test("query booleans convert as the apiserver converts them (first value wins)", arguments: zip(
        ["stdin=true", "stdin=True", "stdin=1", "stdin=", "stdin", "stdin=0", "stdin=false", "stdin=False", "stdin=FALSE",
         "stdin=false&stdin=true", "tty=true"],
        [true, true, true, true, true, false, false, false, false, false, false]))
    func flags(query: String, expected: Bool) throws {
        let r = try #require(try StreamRequest.parse("/api/v1/namespaces/d/pods/p/attach?stdout=true&\(query)"))
        #expect(r.stdin == expected)
        #expect(r.stdout)
        #expect(!r.stderr)
    }

    @Test("attach needs no command; an empty container is none")
    func attach() throws {
        let r = try #require(try StreamRequest.parse("/api/v1/namespaces/kube-system/pods/p/attach?container=&stdin=true&tty=true"))
        #expect(r.kind == .attach && r.namespace == "kube-system" && r.pod == "p")
        #expect(r.command.isEmpty && r.container == nil && r.stdin && r.tty && !r.stdout)
    }

    @Test("portforward reads comma lists and repeated ports; kubectl sends none")
    func portforward() throws {
        let r = try #require(try StreamRequest.parse("/api/v1/namespaces/default/pods/db/portforward?ports=8080,9090&ports=7000"))
        #expect(r.kind == .portforward && r.pod == "db")
        #expect(r.ports == [8080, 9090, 7000])
        let bare = try #require(try StreamRequest.parse("/api/v1/namespaces/default/pods/db/portforward"))
        #expect(bare.ports.isEmpty)
    }

    @Test("a bad port is a 400 naming it", arguments: ["0", "70000", "abc", "-1", "65536"])
    func badPort(port: String) throws {
        let error = try #require(parseError("/api/v1/namespaces/d/pods/p/portforward?ports=80,\(port)"))
        #expect(error.code == 400)
        #expect(error.message.contains("\"\(port)\""))
    }

    @Test("more ports than one-byte channels can number is a 400 (129 ports once trapped the supervisor)")
    func tooManyPorts() throws {
        let ports = Array(repeating: "80", count: 129).joined(separator: ",")
        let error = try #require(parseError("/api/v1/namespaces/d/pods/p/portforward?ports=\(ports)"))
        #expect(error.code == 400 && error.message.contains("at most 127"))
        let most = Array(repeating: "80", count: 127).joined(separator: ",")
        #expect(parseError("/api/v1/namespaces/d/pods/p/portforward?ports=\(most)") == nil)
    }

    @Test("exec without a command, or without any stream, is a 400")
    func execNeedsCommandAndStream() throws {
        let noCommand = try #require(parseError("/api/v1/namespaces/d/pods/p/exec?stdout=true"))
        #expect(noCommand.code == 400 && noCommand.message.contains("command"))
        let noStream = try #require(parseError("/api/v1/namespaces/d/pods/p/exec?command=ls&stdin=false&stdout=0&tty=true"))
        #expect(noStream.code == 400 && noStream.message.contains("stdin, stdout, stderr"))
        #expect(parseError("/api/v1/namespaces/d/pods/p/attach?tty=true")?.code == 400)
    }

    @Test("other paths are not stream requests", arguments: [
        "/api/v1/namespaces/d/pods/x/log", "/api/v1/pods", "/api/v1/namespaces/d/pods/x", "/api/v1/namespaces/d/pods/x/log?ports=abc",
        "/api/v1/namespaces/d/services/x/exec?command=ls&stdout=1", "/apis/apps/v1/namespaces/d/pods/x/exec", "/api/v1/namespaces/d/pods/x/exec/more",
    ])
    func notStream(uri: String) throws {
        #expect(try StreamRequest.parse(uri) == nil)
    }
}

@Suite("Stream status: what the error channel carries")
struct StreamStatusTests {
    @Test("success serializes exactly as Go marshals metav1.Status")
    func success() {
        #expect(String(decoding: StreamStatus.success.serialized(), as: UTF8.self) == #"{"metadata":{},"status":"Success"}"#)
    }

    @Test("a non-zero exit is NonZeroExitCode with the code as the ExitCode cause")
    func exitCode() throws {
        let s = StreamStatus.exitCode(3)
        #expect(s["status"]?.string == "Failure" && s["reason"]?.string == "NonZeroExitCode")
        let cause: JSON = ["reason": "ExitCode", "message": "3"]
        #expect(s[path: "details", "causes"]?.array?.first == cause)
        #expect(s[path: "details", "causes"]?.array?.count == 1)
        #expect(s["metadata"] == JSON.object([:]))
        #expect(try JSON.parse(s.serialized()) == s)
    }

    @Test("wait statuses: exit 0 succeeds, exit codes and 128+signal fail")
    func waitStatus() {
        #expect(StreamStatus.forWaitStatus(0) == StreamStatus.success)
        #expect(StreamStatus.forWaitStatus(3 << 8) == StreamStatus.exitCode(3))
        #expect(StreamStatus.forWaitStatus(255 << 8) == StreamStatus.exitCode(255))
        #expect(StreamStatus.forWaitStatus(9) == StreamStatus.exitCode(137))
        #expect(StreamStatus.forWaitStatus(9)[path: "details", "causes"]?.array?.first?["message"]?.string == "137")
        #expect(StreamStatus.forWaitStatus(15) == StreamStatus.exitCode(143))
    }

    @Test("a command that cannot run is an InternalError with code 500")
    func failure() {
        let s = StreamStatus.failure("no such file")
        #expect(s["reason"]?.string == "InternalError" && s["code"]?.int == 500 && s["status"]?.string == "Failure")
        #expect(s["message"]?.string?.contains("no such file") == true)
    }
}

@Suite("WebSocket subprotocol choice")
struct WebSocketProtocolTests {
    @Test("the first protocol the client offers that the server speaks")
    func choose() {
        #expect(WebSocketProtocols.choose(["v5.channel.k8s.io, v4.channel.k8s.io"], from: WebSocketProtocols.exec) == "v5.channel.k8s.io")
        #expect(WebSocketProtocols.choose(["v4.channel.k8s.io", "v5.channel.k8s.io"], from: WebSocketProtocols.exec) == "v4.channel.k8s.io")
        #expect(WebSocketProtocols.choose(["base64.channel.k8s.io", " v4.channel.k8s.io "], from: WebSocketProtocols.exec) == "v4.channel.k8s.io")
        // Python client v36 port-forward: no v5 for port-forward, so v4.
        #expect(WebSocketProtocols.choose(["v5.channel.k8s.io,v4.channel.k8s.io"], from: WebSocketProtocols.portForward) == "v4.channel.k8s.io")
        #expect(WebSocketProtocols.choose(["SPDY/3.1+portforward.k8s.io"], from: WebSocketProtocols.portForward) == "SPDY/3.1+portforward.k8s.io")
        #expect(WebSocketProtocols.choose(["SPDY/3.1+portforward.k8s.io"], from: WebSocketProtocols.exec) == nil)
        #expect(WebSocketProtocols.choose(["channel.k8s.io", "v3.channel.k8s.io,v2.channel.k8s.io"], from: WebSocketProtocols.exec) == nil)
        #expect(WebSocketProtocols.choose([], from: WebSocketProtocols.exec) == nil)
    }
}

@Suite("SPDY framing as spdystream writes and reads it")
struct SPDYFramerTests {
    @Test("decodes kubectl's SYN_STREAM for a port-forward error stream")
    func decodeClientSyn() throws {
        #expect(try decodeAll(Vec.clientSyn) == [.synStream(id: 1, headers: Vec.clientSynHeaders, fin: false)])
        // libz with the same dictionary and level writes the same bytes.
        #expect(encoded([.synStream(id: 1, headers: Vec.clientSynHeaders, fin: false)], with: SPDYFramer()) == Vec.clientSyn)
    }

    @Test("the first and second empty SYN_REPLY blocks are the reference bytes")
    func synReplies() throws {
        let framer = SPDYFramer()
        #expect(encoded([.synReply(id: 1, headers: [:], fin: false)], with: framer) == Vec.synReply1)
        #expect(encoded([.synReply(id: 3, headers: [:], fin: false)], with: framer) == Vec.synReply3)
        #expect(try decodeAll(Vec.synReply1 + Vec.synReply3) == [.synReply(id: 1, headers: [:], fin: false), .synReply(id: 3, headers: [:], fin: false)])
    }

    @Test("PING, RST_STREAM, GOAWAY, WINDOW_UPDATE and an empty DATA FIN are the reference bytes")
    func fixedFrames() throws {
        let cases: [(SPDYFrame, [UInt8])] = [
            (.ping(id: 1), Vec.ping1), (.rstStream(id: 3, status: SPDYFrame.cancel), Vec.rst3Cancel),
            (.goAway(lastGood: 0, status: 0), Vec.goAwayOK), (.data(id: 3, fin: true, payload: ByteBuffer()), Vec.dataFin3),
            (.windowUpdate(id: 1, delta: 0x10000), Vec.windowUpdate),
        ]
        for (frame, bytes) in cases {
            #expect(encoded([frame], with: SPDYFramer()) == bytes)
            #expect(try decodeAll(bytes) == [frame])
        }
    }

    @Test("a second framer decodes what the first encodes, header blocks sharing one context")
    func roundTrip() throws {
        let frames: [SPDYFrame] = [
            .synStream(id: 1, headers: Vec.clientSynHeaders, fin: false),
            .synStream(id: 3, headers: ["port": "8080", "requestid": "0", "streamtype": "data"], fin: false),
            .synStream(id: 5, headers: ["streamtype": "stdin", "empty": ""], fin: true),
            .synReply(id: 1, headers: [:], fin: false),
            .headers(id: 3, headers: ["a": "b"], fin: true),
            .data(id: 3, fin: true, payload: ByteBuffer(string: "hello")),
            .data(id: 5, fin: false, payload: ByteBuffer(bytes: (0..<32768).map { UInt8(truncatingIfNeeded: $0 * 7) })),
            .rstStream(id: 3, status: SPDYFrame.cancel), .ping(id: 7), .goAway(lastGood: 5, status: 1),
            .windowUpdate(id: 1, delta: 65536), .settings,
        ]
        let sender = SPDYFramer(), receiver = SPDYFramer()
        #expect(try decodeAll(encoded(frames, with: sender), with: receiver) == frames)
        // Again on the same pair: the contexts have moved on in step.
        #expect(try decodeAll(encoded(Array(frames.prefix(3)), with: sender), with: receiver) == Array(frames.prefix(3)))
        // A later header block means nothing to a fresh context.
        let other = SPDYFramer()
        _ = encoded([frames[0]], with: other)
        #expect(decodeError(encoded([frames[1]], with: other)) != nil)
        // Names are lowercased.
        #expect(try decodeAll(encoded([.synStream(id: 1, headers: ["Port": "80"], fin: false)], with: SPDYFramer()))
            == [.synStream(id: 1, headers: ["port": "80"], fin: false)])
    }

    @Test("incomplete input is nil and consumes nothing, not even compression state")
    func incomplete() throws {
        let framer = SPDYFramer()
        for n in [0, 1, 4, 7, 8, 17, 18, Vec.clientSyn.count - 1] {
            var buf = ByteBuffer(bytes: Vec.clientSyn.prefix(n))
            let frame = try framer.decode(&buf)
            #expect(frame == nil)
            #expect(buf.readableBytes == n && buf.readerIndex == 0)
        }
        #expect(try decodeAll(Vec.clientSyn, with: framer) == [.synStream(id: 1, headers: Vec.clientSynHeaders, fin: false)])
    }

    @Test("bytes fed one at a time yield each frame at its last byte")
    func byteAtATime() throws {
        let stream = Vec.clientSyn + Vec.ping1 + Vec.dataFin3
        let framer = SPDYFramer()
        var buf = ByteBuffer()
        var got: [SPDYFrame] = [], ends: [Int] = []
        for (i, b) in stream.enumerated() {
            buf.writeInteger(b)
            while let f = try framer.decode(&buf) { got.append(f); ends.append(i) }
        }
        #expect(got == [.synStream(id: 1, headers: Vec.clientSynHeaders, fin: false), .ping(id: 1), .data(id: 3, fin: true, payload: ByteBuffer())])
        #expect(ends == [Vec.clientSyn.count - 1, Vec.clientSyn.count + 11, stream.count - 1])
    }

    @Test("bad input throws, never traps", arguments: zip([
        "80 03 00 05 00 00 00 00", "80 03 00 0a 00 00 00 00", "00 00 00 00 01 00 00 00",
        "80 03 00 01 00 00 00 12 00 00 00 01 00 00 00 00 00 00 de ad be ef 01 02 03 04",
        "80 03 00 06 00 00 00 00", "80 03 00 03 00 00 00 04 00 00 00 03", "80 03 00 01 00 00 00 08 00 00 00 01 00 00 00 00",
        "80 03 00 01 00 00 00 0a 00 00 00 01 00 00 00 00 00 00",
        // Header blocks that inflate to a count of 5 with no pairs, and to a count of 1000.
        "80 03 00 01 00 00 00 19 00 00 00 01 00 00 00 00 00 00 78 f9 e3 c6 a7 c2 02 65 25 00 00 00 00 ff ff",
        "80 03 00 01 00 00 00 1a 00 00 00 01 00 00 00 00 00 00 78 f9 e3 c6 a7 c2 02 a6 b9 17 00 00 00 00 ff ff",
    ], ["control frame type 5", "type 10", "stream 0", "corrupt", "short", "short", "short", "header block", "truncated", "header block"]))
    func badInput(bytes: String, fragment: String) throws {
        let error = try #require(decodeError(hex(bytes)))
        #expect(error.description.contains(fragment))
    }

    @Test("a frame longer than maxFrameLength throws before its body arrives")
    func tooLong() throws {
        let over = UInt32(SPDYFramer.maxFrameLength + 1)
        for first in [UInt32(0x8003_0000) | 0x00_06, 0x0000_0001] {
            var buf = ByteBuffer()
            buf.writeInteger(first)
            buf.writeInteger(over)
            #expect(decodeError(Array(buf.readableBytesView)) != nil)
            // Exactly the maximum is only incomplete.
            var ok = ByteBuffer()
            ok.writeInteger(first)
            ok.writeInteger(UInt32(SPDYFramer.maxFrameLength))
            let frame = try SPDYFramer().decode(&ok)
            #expect(frame == nil)
        }
    }

    @Test("a header block inflating past maxHeaderBlock throws")
    func headerBomb() throws {
        let big = SPDYFrame.synStream(id: 1, headers: ["x": String(repeating: "a", count: 100_000)], fin: false)
        #expect(decodeError(encoded([big], with: SPDYFramer())) != nil)
        let fits = SPDYFrame.synStream(id: 1, headers: ["x": String(repeating: "a", count: 60_000)], fin: false)
        #expect(try decodeAll(encoded([fits], with: SPDYFramer())) == [fits])
    }
}

// MARK: - the server side of a connection

private enum SPDYEvent: Equatable {
    case sent(SPDYFrame)
    case badWrite(String)
    case open(UInt32, [String: String])
    case replied(UInt32)
    case data(UInt32, String)
    case finished(UInt32)
    case reset(UInt32)
    case closed
    case transportClosed
}

private final class SPDYEventLog { var events: [SPDYEvent] = [] }

/// Decodes every write with its own framer (the server's deflate context mirrors it) and
/// checks each write is exactly one whole frame.
private final class RecordingTransport: SPDYTransport {
    let log: SPDYEventLog
    let decoder = SPDYFramer()
    var writes: [[UInt8]] = []
    var isWritable = true
    var reading = true
    init(_ log: SPDYEventLog) { self.log = log }

    func write(_ bytes: ByteBuffer) {
        writes.append(Array(bytes.readableBytesView))
        var b = bytes
        do throws(SPDYError) {
            guard let frame = try decoder.decode(&b), b.readableBytes == 0 else {
                log.events.append(.badWrite("not one whole frame"))
                return
            }
            log.events.append(.sent(frame))
        } catch {
            log.events.append(.badWrite(error.description))
        }
    }
    func setReading(_ on: Bool) { reading = on }
    func close() { log.events.append(.transportClosed) }
    func abort() { log.events.append(.transportClosed) }
}

private final class RecordingService: SPDYService {
    let log: SPDYEventLog
    let refuse: Set<UInt32>
    init(_ log: SPDYEventLog, refuse: Set<UInt32>) { self.log = log; self.refuse = refuse }

    func open(_ id: UInt32, headers: [String: String]) -> Bool {
        log.events.append(.open(id, headers))
        return !refuse.contains(id)
    }
    func replied(_ id: UInt32) { log.events.append(.replied(id)) }
    func data(_ id: UInt32, _ payload: ByteBuffer) { log.events.append(.data(id, String(buffer: payload))) }
    func finished(_ id: UInt32) { log.events.append(.finished(id)) }
    func reset(_ id: UInt32) { log.events.append(.reset(id)) }
    func writabilityChanged() {}
    func closed() { log.events.append(.closed) }
}

private final class SPDYHarness {
    let log: SPDYEventLog
    let transport: RecordingTransport
    let connection: SPDYConnection
    let client = SPDYFramer()

    init(refuse: Set<UInt32> = []) {
        let log = SPDYEventLog(), transport = RecordingTransport(log)
        self.log = log
        self.transport = transport
        connection = SPDYConnection(transport: transport)
        connection.service = RecordingService(log, refuse: refuse)
    }

    var events: [SPDYEvent] { log.events }
    func clear() { log.events.removeAll() }
    func receive(_ frames: SPDYFrame...) {
        var b = ByteBuffer(bytes: encoded(frames, with: client))
        connection.received(&b)
    }
    func receive(raw: [UInt8]) {
        var b = ByteBuffer(bytes: raw)
        connection.received(&b)
    }
}

private let pf = ["port": "8080", "requestid": "0", "streamtype": "data"]

@Suite("SPDY connection: the server side as kubelet runs it")
struct SPDYConnectionTests {
    @Test("an accepted stream gets an empty SYN_REPLY before anything else, then replied")
    func accepted() {
        let h = SPDYHarness()
        h.receive(.synStream(id: 1, headers: Vec.clientSynHeaders, fin: false))
        #expect(h.events == [.open(1, Vec.clientSynHeaders), .sent(.synReply(id: 1, headers: [:], fin: false)), .replied(1)])
        h.clear()
        h.receive(.synStream(id: 3, headers: pf, fin: true))
        #expect(h.events == [.open(3, pf), .sent(.synReply(id: 3, headers: [:], fin: false)), .replied(3), .finished(3)])
        #expect(h.transport.writes == [Vec.synReply1, Vec.synReply3])
    }

    @Test("a refused stream is reset with CANCEL and its data ignored")
    func refused() {
        let h = SPDYHarness(refuse: [1])
        h.receive(.synStream(id: 1, headers: pf, fin: false), .data(id: 1, fin: true, payload: ByteBuffer(string: "x")))
        #expect(h.events == [.open(1, pf), .sent(.rstStream(id: 1, status: 5))])
    }

    @Test("an even or non-increasing stream id is a PROTOCOL_ERROR reset")
    func badStreamIds() {
        let h = SPDYHarness()
        h.receive(.synStream(id: 2, headers: pf, fin: false))
        #expect(h.events == [.sent(.rstStream(id: 2, status: 1))])
        h.clear()
        h.receive(.synStream(id: 5, headers: pf, fin: false), .synStream(id: 3, headers: pf, fin: false), .synStream(id: 5, headers: pf, fin: false))
        #expect(h.events == [.open(5, pf), .sent(.synReply(id: 5, headers: [:], fin: false)), .replied(5),
                             .sent(.rstStream(id: 3, status: 1)), .sent(.rstStream(id: 5, status: 1))])
    }

    @Test("client PINGs (odd ids) are echoed, even ones are not, even when split byte by byte")
    func pings() {
        let h = SPDYHarness()
        h.receive(.ping(id: 1), .ping(id: 2), .ping(id: 3))
        #expect(h.events == [.sent(.ping(id: 1)), .sent(.ping(id: 3))])
        h.clear()
        let bytes = encoded([.ping(id: 9)], with: SPDYFramer())
        for b in bytes.dropLast() { h.receive(raw: [b]) }
        #expect(h.events.isEmpty)
        h.receive(raw: [bytes.last!])
        #expect(h.events == [.sent(.ping(id: 9))])
    }

    @Test("DATA delivers its payload, FIN then finishes; unknown streams are ignored")
    func data() {
        let h = SPDYHarness()
        h.receive(.synStream(id: 1, headers: pf, fin: false))
        h.clear()
        h.receive(.data(id: 1, fin: false, payload: ByteBuffer(string: "hello ")), .data(id: 1, fin: true, payload: ByteBuffer(string: "world")),
                  .data(id: 7, fin: true, payload: ByteBuffer(string: "stray")))
        #expect(h.events == [.data(1, "hello "), .data(1, "world"), .finished(1)])
        h.clear()
        h.receive(.synStream(id: 3, headers: pf, fin: false))
        h.clear()
        h.receive(raw: Vec.dataFin3)
        #expect(h.events == [.finished(3)])
    }

    @Test("a client RST_STREAM resets an open stream once")
    func clientReset() {
        let h = SPDYHarness()
        h.receive(.synStream(id: 1, headers: pf, fin: false))
        h.clear()
        h.receive(.rstStream(id: 1, status: 5), .rstStream(id: 1, status: 5), .rstStream(id: 9, status: 5))
        #expect(h.events == [.reset(1)])
        h.connection.sendData(1, ByteBuffer(string: "late"))
        #expect(h.events == [.reset(1)])
    }

    @Test("the server's data, FIN and reset go out on open streams only")
    func serverSide() {
        let h = SPDYHarness()
        h.receive(.synStream(id: 1, headers: pf, fin: false))
        h.clear()
        h.connection.sendData(1, ByteBuffer(string: "out"))
        h.connection.finish(1)
        h.connection.reset(1)
        h.connection.reset(1)
        h.connection.sendData(9, ByteBuffer(string: "nowhere"))
        #expect(h.events == [.sent(.data(id: 1, fin: false, payload: ByteBuffer(string: "out"))),
                             .sent(.data(id: 1, fin: true, payload: ByteBuffer())), .sent(.rstStream(id: 1, status: 5))])
    }

    @Test("garbage from the client is a GOAWAY, then the service and the transport close", arguments: [
        "80 03 00 05 00 00 00 00", "de ad be ef ff ff ff ff", "00 00 00 00 01 00 00 00",
        "80 03 00 01 00 00 00 12 00 00 00 03 00 00 00 00 00 00 de ad be ef 01 02 03 04",
    ])
    func garbage(bytes: String) {
        let h = SPDYHarness()
        h.receive(.synStream(id: 1, headers: pf, fin: false))
        h.clear()
        h.receive(raw: hex(bytes))
        #expect(h.events == [.sent(.goAway(lastGood: 1, status: 1)), .closed, .transportClosed])
        h.receive(.ping(id: 1))
        #expect(h.events.count == 3)
    }

    @Test("a client GOAWAY closes without an answer")
    func clientGoAway() {
        let h = SPDYHarness()
        h.receive(.goAway(lastGood: 0, status: 0), .ping(id: 1))
        #expect(h.events == [.closed, .transportClosed])
    }

    @Test("after shutDown nothing more is written and closed is called once")
    func afterShutDown() {
        let h = SPDYHarness()
        h.receive(.synStream(id: 1, headers: pf, fin: false))
        h.clear()
        let writes = h.transport.writes.count
        h.connection.shutDown()
        h.connection.sendData(1, ByteBuffer(string: "x"))
        h.connection.finish(1)
        h.connection.reset(1)
        h.connection.goAway()
        h.connection.shutDown()
        h.receive(.ping(id: 1), .synStream(id: 3, headers: pf, fin: false))
        #expect(h.events == [.closed, .transportClosed])
        #expect(h.transport.writes.count == writes)
    }
}
