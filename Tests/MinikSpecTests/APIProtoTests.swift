// Protobuf request bodies as kubectl's typed clients send them (`kubectl create
// deployment`, `create service`, `run`): the bytes are built here by hand, field number
// by field number from k8s.io/api's generated.proto (ProtoSchema+Generated.swift), with
// the zero values gogo-protobuf writes for every non-pointer field, and the decoded JSON
// must be what the same object sent as JSON would be. Malformed bodies (any truncation,
// flipped bytes) are a 400, an unknown kind a 415, and nothing traps.
import Foundation
import MinikAPI
import Testing

/// A tiny protobuf writer: varint keys, varints and length-delimited fields.
enum PB {
    static func varint(_ v: UInt64) -> [UInt8] {
        var v = v
        var out: [UInt8] = []
        while v >= 0x80 {
            out.append(UInt8(v & 0x7f) | 0x80)
            v >>= 7
        }
        out.append(UInt8(v))
        return out
    }

    /// A varint field (wire type 0).
    static func num(_ field: Int, _ v: Int64) -> [UInt8] { varint(UInt64(field << 3)) + varint(UInt64(bitPattern: v)) }
    /// A length-delimited field (wire type 2) holding `bytes`.
    static func bytes(_ field: Int, _ bytes: [UInt8]) -> [UInt8] { varint(UInt64(field << 3 | 2)) + varint(UInt64(bytes.count)) + bytes }
    static func str(_ field: Int, _ s: String) -> [UInt8] { bytes(field, Array(s.utf8)) }
    /// An embedded message made of `parts`.
    static func msg(_ field: Int, _ parts: [UInt8]...) -> [UInt8] { bytes(field, parts.flatMap { $0 }) }
    /// One entry of a map<string, string> field.
    static func entry(_ field: Int, _ key: String, _ value: String) -> [UInt8] { msg(field, str(1, key), str(2, value)) }

    /// The "k8s\0" magic and a runtime.Unknown naming apiVersion and kind around `raw`.
    static func envelope(_ apiVersion: String, _ kind: String, _ raw: [UInt8]) -> [UInt8] {
        [0x6b, 0x38, 0x73, 0x00] + msg(1, str(1, apiVersion), str(2, kind)) + bytes(2, raw)
    }

    /// A zero meta.v1.Time, as gogo writes an unset non-pointer Time.
    static func zeroTime(_ field: Int) -> [UInt8] { msg(field, num(1, 0), num(2, 0)) }
}

/// apps/v1 Deployment "echo": 2 replicas of agnhost netexec, as `kubectl create
/// deployment echo --image=agnhost --replicas=2 -- netexec --http-port=8080` sends it.
func echoDeployment(replicas: Int64 = 2) -> [UInt8] {
    let labels = PB.entry(11, "app", "echo")
    // meta.v1.ObjectMeta: name 1, namespace 3, generation 7, creationTimestamp 8, labels 11.
    let meta = PB.msg(1, PB.str(1, "echo"), PB.str(2, ""), PB.str(3, ""), PB.num(7, 0), PB.zeroTime(8), labels)
    // core.v1.Container: name 1, image 2, args 4, workingDir 5, resources 8,
    // terminationMessagePath 13, imagePullPolicy 14, stdin 16.
    let container = PB.msg(2, PB.str(1, "agnhost"), PB.str(2, "agnhost"), PB.str(4, "netexec"), PB.str(4, "--http-port=8080"),
                           PB.str(5, ""), PB.msg(8), PB.str(13, ""), PB.str(14, ""), PB.num(16, 0))
    // core.v1.PodSpec: containers 2, restartPolicy 3, dnsPolicy 6, hostNetwork 11.
    let podSpec = PB.msg(2, container, PB.str(3, ""), PB.str(6, ""), PB.num(11, 0))
    // core.v1.PodTemplateSpec: metadata 1, spec 2.
    let template = PB.msg(3, PB.msg(1, PB.zeroTime(8), PB.entry(11, "app", "echo")), podSpec)
    // apps.v1.DeploymentSpec: replicas 1, selector 2 (matchLabels 1), template 3,
    // strategy 4, minReadySeconds 5, paused 7.
    let spec = PB.msg(2, PB.num(1, replicas), PB.msg(2, PB.entry(1, "app", "echo")), template, PB.msg(4, PB.str(1, "")), PB.num(5, 0), PB.num(7, 0))
    return meta + spec
}

let echoJSON = #"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"labels":{"app":"echo"},"name":"echo"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"echo"}},"template":{"metadata":{"labels":{"app":"echo"}},"spec":{"containers":[{"args":["netexec","--http-port=8080"],"image":"agnhost","name":"agnhost"}]}}}}"#

/// The error of decoding `body`, nil when it decodes.
func protoError(_ body: [UInt8]) -> APIError? {
    do { _ = try ProtoSchema.decode(body); return nil } catch { return error }
}

@Suite("API protobuf bodies")
struct APIProtoTests {
    @Test func aDeploymentDecodesToTheJSONKubectlWouldSend() throws {
        let body = PB.envelope("apps/v1", "Deployment", echoDeployment())
        #expect(try ProtoSchema.decode(body).text == echoJSON)
        #expect(ProtoSchema.isProtobuf("application/vnd.kubernetes.protobuf"))
        #expect(ProtoSchema.isProtobuf("application/vnd.kubernetes.protobuf;stream=watch"))
        #expect(!ProtoSchema.isProtobuf("application/json"))
    }

    @Test func zeroReplicasAreKept() throws {
        let o = try ProtoSchema.decode(PB.envelope("apps/v1", "Deployment", echoDeployment(replicas: 0)))
        #expect(o[path: "spec", "replicas"] == 0)
    }

    @Test func theEnvelopesFieldsMayComeInAnyOrderWithExtraFields() throws {
        let raw = echoDeployment()
        // raw first, then typeMeta, with contentEncoding and contentType (empty) as gogo writes them.
        let body: [UInt8] = [0x6b, 0x38, 0x73, 0x00] + PB.bytes(2, raw) + PB.msg(1, PB.str(1, "apps/v1"), PB.str(2, "Deployment"))
            + PB.str(3, "") + PB.str(4, "")
        #expect(try ProtoSchema.decode(body).text == echoJSON)
    }

    @Test func aPodWithTimesAndUnknownFields() throws {
        // A creationTimestamp that is set, a field number the schema does not know (999)
        // and a fixed64 one: the time is RFC 3339, the unknown fields are skipped.
        let meta = PB.msg(1, PB.str(1, "p"), PB.str(3, "default"), PB.msg(8, PB.num(1, 1_767_225_600), PB.num(2, 500)),
                          PB.str(999, "ignored"), [0x89, 0x3e] + [UInt8](repeating: 0, count: 8))
        let spec = PB.msg(2, PB.msg(2, PB.str(1, "c"), PB.str(2, "busybox"), PB.str(3, "sh"), PB.str(3, "-c")), PB.num(4, 30))
        let o = try ProtoSchema.decode(PB.envelope("v1", "Pod", meta + spec))
        #expect(o.text == #"{"apiVersion":"v1","kind":"Pod","metadata":{"creationTimestamp":"2026-01-01T00:00:00Z","name":"p","namespace":"default"},"spec":{"containers":[{"command":["sh","-c"],"image":"busybox","name":"c"}],"terminationGracePeriodSeconds":30}}"#)
    }

    @Test func aServicesTargetPortIsAnIntOrString() throws {
        // `kubectl create service clusterip web --tcp=80:8080`: targetPort is an
        // intstr.IntOrString {type 0, intVal 8080, strVal ""}, which is 8080 in JSON.
        let port = PB.msg(1, PB.str(1, "80-8080"), PB.str(2, "TCP"), PB.num(3, 80), PB.msg(4, PB.num(1, 0), PB.num(2, 8080), PB.str(3, "")), PB.num(5, 0))
        let named = PB.msg(1, PB.str(1, "http"), PB.str(2, "TCP"), PB.num(3, 81), PB.msg(4, PB.num(1, 1), PB.num(2, 0), PB.str(3, "web")), PB.num(5, 0))
        let spec = PB.msg(2, port, named, PB.entry(2, "app", "web"), PB.str(3, ""), PB.str(4, "ClusterIP"))
        let o = try ProtoSchema.decode(PB.envelope("v1", "Service", PB.msg(1, PB.str(1, "web")) + spec))
        #expect(o[path: "spec", "type"] == "ClusterIP")
        #expect(o[path: "spec", "selector"] == ["app": "web"])
        let ports = o[path: "spec", "ports"]?.array ?? []
        #expect(ports.count == 2)
        #expect(ports.first?["port"] == 80)
        do {
            #expect(ports.first?["targetPort"] == 8080)
            #expect(ports.last?["targetPort"] == "web")
        }
    }

    @Test func resourceQuantitiesAreStrings() throws {
        // resources.limits {cpu: Quantity{string "500m"}}.
        let quantity = PB.msg(2, PB.str(1, "500m"))
        let container = PB.msg(2, PB.str(1, "c"), PB.str(2, "busybox"), PB.msg(8, PB.msg(1, PB.str(1, "cpu"), quantity)))
        let o = try ProtoSchema.decode(PB.envelope("v1", "Pod", PB.msg(1, PB.str(1, "p")) + PB.msg(2, container)))
        let limits = o[path: "spec", "containers"]?.array?.first?[path: "resources", "limits"]
        do {
            #expect(limits == ["cpu": "500m"])
        }
    }

    @Test func aNamespace() throws {
        let o = try ProtoSchema.decode(PB.envelope("v1", "Namespace", PB.msg(1, PB.str(1, "team-a"), PB.zeroTime(8)) + PB.msg(2) + PB.msg(3, PB.str(1, ""))))
        #expect(o.text == #"{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"team-a"}}"#)
    }

    @Test func anUnknownKindIs415() {
        let e = protoError(PB.envelope("example.com/v1", "Widget", PB.msg(1, PB.str(1, "w"))))
        #expect(e?.code == 415)
        #expect(e?.reason == "UnsupportedMediaType")
        #expect(e?.message.contains("example.com/v1/Widget") == true)
        #expect(protoError(PB.envelope("v1", "Deployment", echoDeployment()))?.code == 415)
    }

    @Test func withoutTheMagicOrTheObjectIs400() {
        #expect(protoError(Array(echoDeployment()))?.code == 400)
        #expect(protoError([])?.code == 400)
        #expect(protoError([0x6b, 0x38, 0x73])?.code == 400)
        let noRaw = [0x6b, 0x38, 0x73, 0x00] + PB.msg(1, PB.str(1, "apps/v1"), PB.str(2, "Deployment"))
        #expect(protoError(noRaw)?.message == "the protobuf body has no object")
    }

    @Test func everyTruncationIs400AndNeverTraps() {
        let body = PB.envelope("apps/v1", "Deployment", echoDeployment())
        for n in 0..<body.count {
            let e = protoError(Array(body[0..<n]))
            // The magic alone names no kind at all, which is answered as an unsupported one.
            #expect(e?.code == 400 || (n == 4 && e?.code == 415), "truncated to \(n) of \(body.count) bytes")
        }
        // A truncated object inside a well-formed envelope: decoded or 400, never a trap.
        let raw = echoDeployment()
        for n in 0..<raw.count {
            if let e = protoError(PB.envelope("apps/v1", "Deployment", Array(raw[0..<n]))) {
                #expect(e.code == 400)
            }
        }
    }

    @Test func flippedBytesAre400OrDecodeButNeverTrap() {
        let body = PB.envelope("apps/v1", "Deployment", echoDeployment())
        var rng = SplitMix(seed: 0x6b38)
        for _ in 0..<3000 {
            var b = body
            for _ in 0..<(1 + Int(rng.next() % 3)) {
                let i = 4 + Int(rng.next() % UInt64(b.count - 4))
                b[i] = UInt8(truncatingIfNeeded: rng.next())
            }
            if let e = protoError(b) { #expect(e.code == 400 || e.code == 415) }
        }
    }

    @Test func overlongVarintsAndHugeLengthsAre400() {
        let head: [UInt8] = [0x6b, 0x38, 0x73, 0x00]
        #expect(protoError(head + [0x0a] + [UInt8](repeating: 0xff, count: 11))?.code == 400)
        #expect(protoError(head + [0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])?.code == 400)
        #expect(protoError(head + [0x00, 0x00])?.code == 400) // field number 0
        #expect(protoError(head + [0x0b])?.code == 400) // wire type 3 (a group)
    }

    @Test func aCronJobsNestedTemplates() throws {
        // CronJob.spec.jobTemplate (5) .spec (2) .template (6) .spec (2) .containers (2).
        let cronJob = PB.msg(1, PB.str(1, "c")) + PB.msg(2, PB.str(1, "* * * * *"),
                                                     PB.msg(5, PB.msg(2, PB.msg(6, PB.msg(2, PB.msg(2, PB.str(1, "c"), PB.str(2, "busybox")))))))
        #expect(try ProtoSchema.decode(PB.envelope("batch/v1", "CronJob", cronJob)).text
            == #"{"apiVersion":"batch/v1","kind":"CronJob","metadata":{"name":"c"},"spec":{"jobTemplate":{"spec":{"template":{"spec":{"containers":[{"image":"busybox","name":"c"}]}}}},"schedule":"* * * * *"}}"#)
    }

    @Test func aTimeFarOutOfRangeIsRefusedNotTrapped() async {
        // rfc3339() converts the seconds to time_t through a Double: seconds near
        // Int64.max overflow the conversion and trap, so a client can crash the server
        // with a creationTimestamp of 0x7fffffffffffffff.
        do {
            await #expect(processExitsWith: .success) {
                let meta = PB.msg(1, PB.str(1, "p"), PB.msg(8, PB.num(1, Int64.max), PB.num(2, 0)))
                _ = try? ProtoSchema.decode(PB.envelope("v1", "Pod", meta))
            }
        }
    }
}

/// A deterministic generator for the byte flips.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9e3779b97f4a7c15
        var z = state
        z = (z ^ (z >> 30)) &* 0xbf58476d1ce4e5b9
        z = (z ^ (z >> 27)) &* 0x94d049bb133111eb
        return z ^ (z >> 31)
    }
}
