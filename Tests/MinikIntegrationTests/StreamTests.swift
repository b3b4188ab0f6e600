// Root integration tests of the interactive half of the API with the real clients:
// kubectl exec (WebSocket, and SPDY as older clients speak it), a terminal under
// `script` resized while it runs, stdin EOF, exit codes, kubectl cp (tar over exec),
// port-forward (SPDY tunnelled in WebSocket, and direct) with 20 connections at once
// moving 10 MB each checked end to end, a server bound to the pod's 127.0.0.1, a
// Service, and the Python client's exec and port-forward.
import Foundation
import MinikAPIServer
import MinikRuntime
import MinikSpec
import Testing

extension RootTests {
@Suite("kubectl exec, cp and port-forward (root)", .serialized,
       .enabled(if: kubectlPath != nil, "kubectl is not installed (make deps installs it where its apt repository is configured)"))
struct StreamTests {
    static let yaml = """
    kind: Cluster
    apiVersion: kind.x-k8s.io/v1alpha4
    name: NAME
    nodes: [{role: control-plane}, {role: worker}]
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: box}
    spec:
      containers:
      - name: main
        image: busybox
        command: [sh, -c, 'nc -ll -p 9000 -e cat & exec sleep 3600']
    ---
    apiVersion: v1
    kind: Pod
    metadata: {name: lo, labels: {app: lo}}
    spec:
      containers:
      - name: httpd
        image: busybox
        command: [sh, -c, 'mkdir -p /www && echo only-on-loopback > /www/index.html && exec httpd -f -p 127.0.0.1:8081 -h /www']
    ---
    apiVersion: v1
    kind: Service
    metadata: {name: lo}
    spec:
      selector: {app: lo}
      ports: [{port: 80, targetPort: 8081}]
    """

    static let cacheDir = "/tmp/minik-tests-\(getpid())-streamcache"

    func kubectl(_ args: [String], env: [String: String] = [:]) -> Result {
        shell([kubectlPath!, "--cache-dir", Self.cacheDir] + args, env: env.merging(["KUBECONFIG": testKubeconfig]) { $1 })
    }

    /// A shell command line (for redirections and `script`) with the tests' kubeconfig.
    func sh(_ line: String, env: [String: String] = [:]) -> Result {
        shell(["sh", "-c", line], env: env.merging(["KUBECONFIG": testKubeconfig, "KUBECACHEDIR": Self.cacheDir]) { $1 })
    }

    func up(_ name: String) throws -> SpecFile {
        let spec = try SpecFile(Self.yaml.replacingOccurrences(of: "NAME", with: name))
        try claim(name)
        let r = minik(["up", spec.path])
        try #require(r.code == 0, "up failed: \(r.err)")
        return spec
    }

    @Test("kubectl exec: output and exit codes, stdin to EOF, a terminal resized under script, errors, SPDY, kubectl cp, the Python client")
    func exec() throws {
        let name = "it-exec"
        defer { cleanUp(name); try? FileManager.default.removeItem(atPath: Self.cacheDir) }
        _ = try up(name)

        let three = kubectl(["exec", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 3"])
        #expect(three.code == 3 && three.out == "out\n" && three.err.contains("err\n") && three.err.contains("command terminated with exit code 3"), "\(three)")
        #expect(kubectl(["exec", "box", "--", "true"]).code == 0)
        let killed = kubectl(["exec", "box", "--", "sh", "-c", "kill -9 $$"])
        #expect(killed.code == 137, "\(killed)")

        // stdin streamed to its end: the command sees EOF and the whole input.
        let input = try SpecFile(String(repeating: "0123456789abcdef", count: 65536))
        let wc = sh("kubectl --cache-dir $KUBECACHEDIR exec -i box -- wc -c < \(input.path)")
        #expect(wc.out.trimmed == "1048576", "\(wc)")
        let md5 = sh("kubectl --cache-dir $KUBECACHEDIR exec -i box -- md5sum < \(input.path)").out.prefix(32)
        #expect(!md5.isEmpty && md5 == shell(["md5sum", input.path]).out.prefix(32))

        // The same over SPDY (older kubectl; KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false).
        let spdy = ["KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"]
        let four = kubectl(["exec", "box", "--", "sh", "-c", "echo via spdy; exit 4"], env: spdy)
        #expect(four.code == 4 && four.out == "via spdy\n" && four.err.contains("command terminated with exit code 4"), "\(four)")
        let spdyIn = sh("kubectl --cache-dir $KUBECACHEDIR exec -i box -- wc -c < \(input.path)", env: spdy)
        #expect(spdyIn.out.trimmed == "1048576", "\(spdyIn)")

        // A terminal of the container's own: its size follows ours, also when it changes.
        let term = sh("""
            sleep 4 | script -qec "stty cols 100 rows 30; kubectl --cache-dir $KUBECACHEDIR exec -it box -- sh -c 'tty; stty size; sleep 2; stty size' </dev/tty & sleep 1.2; stty cols 120 rows 40; kill -WINCH \\$!; wait" /dev/null
            """)
        // (A terminal ends lines with \r\n, one Character in Swift.)
        let lines = term.out.replacingOccurrences(of: "\r", with: "").split(separator: "\n").map(String.init)
        #expect(lines.contains("/dev/pts/0") && lines.contains("30 100") && lines.contains("40 120"), "\(term)")
        // An interactive shell: commands typed in, its exit code out.
        let typed = sh("(sleep 1; printf 'echo typed-$((6*7))\\nexit 5\\n'; sleep 1) | script -qec 'stty cols 80 rows 24; kubectl --cache-dir $KUBECACHEDIR exec -it box -- sh' /dev/null")
        #expect(typed.out.contains("typed-42") && typed.out.contains("command terminated with exit code 5"), "\(typed)")

        // Errors name what is wrong.
        let noPod = kubectl(["exec", "nope", "--", "true"])
        #expect(noPod.code != 0 && noPod.err.contains("pods \"nope\" not found"), "\(noPod)")
        let noContainer = kubectl(["exec", "box", "-c", "nope", "--", "true"])
        #expect(noContainer.code != 0 && noContainer.err.contains("container nope is not valid for pod box"), "\(noContainer)")
        let noBinary = kubectl(["exec", "box", "--", "/no/such/binary"])
        #expect(noBinary.code != 0 && noBinary.err.contains("error executing command in container") && noBinary.err.contains("/no/such/binary"), "\(noBinary)")

        // Without the cluster's certificate the upgrade is refused with 401.
        let server = try #require(liveState(name)?.apiServer)
        let anonymous = shell(["curl", "-sk", "-H", "Connection: Upgrade", "-H", "Upgrade: websocket", "-H", "Sec-WebSocket-Version: 13",
                               "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", "-H", "Sec-WebSocket-Protocol: v5.channel.k8s.io",
                               "\(server)/api/v1/namespaces/default/pods/box/exec?command=id&stdout=true"])
        #expect((try? json(anonymous.out))?["code"] as? Int == 401, "\(anonymous)")
        // And a plain request gets the apiserver's 400.
        let files = PKIFiles(dir: Naming.pkiDir(name))
        let plain = shell(["curl", "-s", "--cacert", files.caCert, "--cert", files.adminCert, "--key", files.adminKey,
                           "\(server)/api/v1/namespaces/default/pods/box/exec?command=id&stdout=true"])
        #expect((try? json(plain.out))?["message"] as? String == "Upgrade request required", "\(plain)")

        // A client that goes away: its command gets a hang-up, as from a terminal.
        let gone = Process()
        gone.executableURL = URL(fileURLWithPath: kubectlPath!)
        gone.arguments = ["--cache-dir", Self.cacheDir, "exec", "box", "--", "sh", "-c",
                          "trap 'echo hup > /tmp/hup; exit' HUP; echo up > /tmp/up; while true; do sleep 0.2; done"]
        gone.environment = ["KUBECONFIG": testKubeconfig, "PATH": "/usr/bin:/bin"]
        try gone.run()
        // Killed once its command runs (kubectl may be a dispatcher running the real one
        // as its child: both go).
        #expect(waitFor { kubectl(["exec", "box", "--", "cat", "/tmp/up"]).out == "up\n" })
        _ = shell(["pkill", "-KILL", "-P", String(gone.processIdentifier)])
        kill(gone.processIdentifier, SIGKILL)
        gone.waitUntilExit()
        #expect(waitFor { kubectl(["exec", "box", "--", "cat", "/tmp/hup"]).out == "hup\n" })

        // Bounded: a client that stops reading holds up the command (its pipe fills), not
        // the supervisor's memory; when it leaves, the command gets its hang-up.
        if hasPythonClient {
            let supervisor = try #require(liveState(name)?.supervisorPID)
            func rssKiB() -> Int {
                let status = (try? String(contentsOfFile: "/proc/\(supervisor)/status", encoding: .utf8)) ?? ""
                return status.split(separator: "\n").first { $0.hasPrefix("VmRSS:") }.flatMap { Int($0.split(separator: " ")[1]) } ?? 0
            }
            let before = rssKiB()
            let stalled = Process()
            stalled.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            stalled.arguments = ["python3", "-c", """
                import time
                from kubernetes import client, config
                from kubernetes.stream import stream
                config.load_kube_config()
                r = stream(client.CoreV1Api().connect_get_namespaced_pod_exec, "box", "default", command=["yes"],
                           stderr=True, stdin=False, stdout=True, tty=False, _preload_content=False)
                time.sleep(6)
                r.close()
                """]
            stalled.environment = ProcessInfo.processInfo.environment.merging(["KUBECONFIG": testKubeconfig]) { $1 }
            try stalled.run()
            Thread.sleep(forTimeInterval: 4)
            let during = rssKiB()
            #expect(kubectl(["exec", "box", "--", "sh", "-c", "ps | grep -c '[y]es'"]).out.trimmed == "1")
            #expect(during - before < 32 * 1024, "the supervisor grew from \(before) to \(during) KiB while a client did not read")
            stalled.waitUntilExit()
            #expect(waitFor { kubectl(["exec", "box", "--", "sh", "-c", "ps | grep -c '[y]es'"]).out.trimmed == "0" })
        }

        // kubectl cp is tar over exec, both ways.
        let dir = try SpecFile("copied both ways\n")
        #expect(kubectl(["cp", dir.path, "box:/tmp/in.txt"]).code == 0)
        #expect(kubectl(["exec", "box", "--", "cat", "/tmp/in.txt"]).out == "copied both ways\n")
        let back = dir.dir + "/back.txt"
        #expect(kubectl(["cp", "box:/tmp/in.txt", back]).code == 0)
        #expect((try? String(contentsOfFile: back, encoding: .utf8)) == "copied both ways\n")

        if hasPythonClient {
            let py = shell(["python3", "-c", """
                from kubernetes import client, config
                from kubernetes.stream import stream
                config.load_kube_config()
                v1 = client.CoreV1Api()
                print(repr(stream(v1.connect_get_namespaced_pod_exec, "box", "default", command=["sh", "-c", "echo hello; echo oops >&2"],
                                  stderr=True, stdin=False, stdout=True, tty=False)))
                r = stream(v1.connect_get_namespaced_pod_exec, "box", "default", command=["sh", "-c", "cat; exit 7"],
                           stderr=True, stdin=True, stdout=True, tty=False, _preload_content=False)
                r.write_stdin("abc\\n")
                r.update(timeout=2)
                print(repr(r.read_stdout()))
                try:
                    r.close_channel(0)
                except Exception:
                    r.write_stdin("")
                r.run_forever(timeout=5)
                print(r.returncode)
                """], env: ["KUBECONFIG": testKubeconfig])
            let out = py.out.split(separator: "\n").map(String.init)
            #expect(py.code == 0 && out == ["'hello\\noops\\n'", "'abc\\n'", "7"], "\(py)")
        }
    }

    @Test("kubectl run --rm -it, attach to a terminal and to a plain stdin, debug --target seeing the target's processes, ephemeral containers' rules")
    func attachRunDebug() throws {
        let name = "it-attach"
        defer { cleanUp(name); try? FileManager.default.removeItem(atPath: Self.cacheDir) }
        let spec = try up(name)

        // run --rm -it: a new pod attached to, its exit code kubectl's, the pod gone after.
        let run = sh("""
            (sleep 3; printf 'tty; echo typed-$((6*7))\n'; sleep 1; printf 'exit 3\n'; sleep 4) | script -qec 'stty cols 80 rows 24; kubectl --cache-dir $KUBECACHEDIR run tmp --image=busybox --rm -it --restart=Never -- sh; echo kubectl-rc=$?' /dev/null
            """)
        #expect(run.out.contains("/dev/pts/0") && run.out.contains("typed-42") && run.out.contains("pod \"tmp\" deleted") && run.out.contains("kubectl-rc=3"), "\(run)")
        #expect(waitFor { kubectl(["get", "pod", "tmp"]).code != 0 })

        // attach -it to a pod started with stdin and tty; the same over SPDY.
        let pod = try SpecFile("""
            apiVersion: v1
            kind: Pod
            metadata: {name: shell}
            spec:
              containers:
              - {name: main, image: busybox, command: [sh], stdin: true, tty: true}
            ---
            apiVersion: v1
            kind: Pod
            metadata: {name: reader}
            spec:
              restartPolicy: Never
              containers:
              - {name: main, image: busybox, command: [sh, -c, 'while read line; do echo "got $line"; done; echo stdin-closed'], stdin: true, stdinOnce: true}
            """)
        #expect(kubectl(["apply", "-f", pod.path]).code == 0)
        #expect(waitFor { kubectl(["get", "pod", "shell", "-o", "jsonpath={.status.phase}"]).out == "Running" })
        for (label, env) in [("ws", [String: String]()), ("spdy", ["KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false"])] {
            // The shell stays (no EOF is sent: the input ends only after kubectl is gone).
            let attach = sh("""
                (sleep 1.5; printf 'echo attached-\(label)-$((2+3))\n'; sleep 1.5) | timeout 3 script -qec 'stty cols 80 rows 24; kubectl --cache-dir $KUBECACHEDIR attach -it shell' /dev/null
                """, env: env)
            #expect(attach.out.contains("attached-\(label)-5"), "\(label): \(attach)")
        }
        // A plain stdin: what is sent is read; stdinOnce closes it when the input ends,
        // the container then ends, and so does the attach.
        #expect(waitFor { kubectl(["get", "pod", "reader", "-o", "jsonpath={.status.phase}"]).out == "Running" })
        let fed = sh("printf 'one\ntwo\n' | timeout 20 kubectl --cache-dir $KUBECACHEDIR attach -i reader")
        #expect(fed.code == 0 && fed.out.contains("got one") && fed.out.contains("got two") && fed.out.contains("stdin-closed"), "\(fed)")
        #expect(waitFor { kubectl(["get", "pod", "reader", "-o", "jsonpath={.status.phase}"]).out == "Succeeded" })

        // debug: an ephemeral container in the target's PID namespace; the pod stays.
        let uid = kubectl(["get", "pod", "shell", "-o", "jsonpath={.metadata.uid}"]).out
        let debug = sh("""
            (sleep 4; printf 'ps; echo debug-done\n'; sleep 1; printf 'exit\n'; sleep 2) | script -qec 'stty cols 100 rows 24; kubectl --cache-dir $KUBECACHEDIR debug -it shell --image=busybox --target=main --container=dbg -- sh' /dev/null
            """)
        // The target's own process (its sh, PID 1 there) is listed.
        #expect(debug.out.contains("debug-done") && debug.out.contains("    1 root     sh"), "\(debug)")
        #expect(kubectl(["get", "pod", "shell", "-o", "jsonpath={.metadata.uid}"]).out == uid)
        let statuses = kubectl(["get", "pod", "shell", "-o", "jsonpath={.status.ephemeralContainerStatuses[0].name} {.spec.ephemeralContainers[0].targetContainerName}"])
        #expect(statuses.out == "dbg main", "\(statuses)")
        let described = kubectl(["describe", "pod", "shell"]).out
        #expect(described.contains("Ephemeral Containers:") && described.contains("  dbg:"), "\(described)")
        // The apiserver's rules: no removing, no ports, a target that exists, unique names.
        func patch(_ body: String) -> Result {
            kubectl(["patch", "pod", "shell", "--subresource=ephemeralcontainers", "--type=json", "-p", body])
        }
        let removed = patch(#"[{"op":"remove","path":"/spec/ephemeralContainers/0"}]"#)
        #expect(removed.code != 0 && removed.err.contains("existing ephemeral containers \"dbg\" may not be removed"), "\(removed)")
        let ports = patch(#"[{"op":"add","path":"/spec/ephemeralContainers/-","value":{"name":"x","image":"busybox","ports":[{"containerPort":80}]}}]"#)
        #expect(ports.code != 0 && ports.err.contains("spec.ephemeralContainers[1].ports: Forbidden: cannot be set for an Ephemeral Container"), "\(ports)")
        let target = patch(#"[{"op":"add","path":"/spec/ephemeralContainers/-","value":{"name":"y","image":"busybox","targetContainerName":"nope"}}]"#)
        #expect(target.code != 0 && target.err.contains("targetContainerName: Not found: \"nope\""), "\(target)")
        let dup = patch(#"[{"op":"add","path":"/spec/ephemeralContainers/-","value":{"name":"main","image":"busybox"}}]"#)
        #expect(dup.code != 0 && dup.err.contains("Duplicate value: \"main\""), "\(dup)")
        // Kept across a new supervisor: the ephemeral container is still the pod's.
        let pid = try #require(liveState(name)?.supervisorPID)
        kill(pid, SIGKILL)
        #expect(waitFor { liveState(name) == nil })
        try #require(minik(["up", spec.path]).code == 0, "adoption")
        let after = kubectl(["get", "pod", "shell", "-o", "jsonpath={.metadata.uid} {.spec.ephemeralContainers[0].name} {.status.ephemeralContainerStatuses[0].state.terminated.reason}"])
        #expect(after.out == "\(uid) dbg Completed", "\(after)")
    }

    /// `kubectl port-forward ARGS` in the background; the local port it listens on.
    final class Forward {
        let process = Process()
        var port = 0
        var log = ""

        init(_ args: [String], env: [String: String] = [:]) throws {
            process.executableURL = URL(fileURLWithPath: kubectlPath!)
            process.arguments = ["--cache-dir", StreamTests.cacheDir, "port-forward"] + args
            process.environment = ProcessInfo.processInfo.environment.merging(env.merging(["KUBECONFIG": testKubeconfig]) { $1 }) { $1 }
            let out = Pipe()
            process.standardOutput = out
            process.standardError = out
            try process.run()
            // "Forwarding from 127.0.0.1:NNNNN -> 9000"
            let deadline = Date().addingTimeInterval(15)
            while port == 0 && Date() < deadline {
                let chunk = out.fileHandleForReading.availableData
                if chunk.isEmpty { break }
                log += String(decoding: chunk, as: UTF8.self)
                if let r = log.range(of: "Forwarding from 127.0.0.1:") {
                    port = Int(log[r.upperBound...].prefix { $0.isNumber }) ?? 0
                }
            }
        }

        deinit {
            process.terminate()
            process.waitUntilExit()
        }
    }

    /// n connections at once to 127.0.0.1:port, each sending `size` random bytes and
    /// reading back the echo to EOF; "n/n ok" when every checksum matches.
    func echoMany(port: Int, n: Int, size: Int) -> Result {
        shell(["python3", "-c", """
            import socket, threading, hashlib, os, sys
            port, n, size = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
            results = [None] * n
            def one(i):
                try:
                    data = os.urandom(size)
                    s = socket.create_connection(("127.0.0.1", port), timeout=120)
                    got = []
                    def reader():
                        while True:
                            b = s.recv(65536)
                            if not b: break
                            got.append(b)
                    t = threading.Thread(target=reader); t.start()
                    s.sendall(data); s.shutdown(socket.SHUT_WR)
                    t.join(); s.close()
                    back = b"".join(got)
                    results[i] = hashlib.sha256(data).digest() == hashlib.sha256(back).digest() or len(back)
                except Exception as e:
                    results[i] = repr(e)
            ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
            [t.start() for t in ts]; [t.join() for t in ts]
            print("%d/%d ok" % (sum(1 for r in results if r is True), n), [r for r in results if r is not True])
            """, String(port), String(n), String(size)])
    }

    @Test("kubectl port-forward: 20 connections at once moving 10 MB each, tunnelled and direct SPDY, a server on the pod's loopback, a Service, the Python client")
    func portForward() throws {
        let name = "it-pf"
        defer { cleanUp(name); try? FileManager.default.removeItem(atPath: Self.cacheDir) }
        _ = try up(name)
        #expect(waitFor { kubectl(["exec", "box", "--", "sh", "-c", "netstat -ltn | grep -q :9000"]).code == 0 })

        // kubectl's default: SPDY tunnelled in a WebSocket.
        let tunnel = try Forward(["pod/box", ":9000"])
        try #require(tunnel.port > 0, "port-forward: \(tunnel.log)")
        let many = echoMany(port: tunnel.port, n: 20, size: 10_000_000)
        let log = (try? String(contentsOfFile: Naming.clusterDir(name) + "/supervisor.log", encoding: .utf8)) ?? ""
        #expect(many.out.hasPrefix("20/20 ok"), "\(many)\nsupervisor: \(log.suffix(3000))\nkubectl: \(tunnel.log)")
        // Older kubectl: SPDY straight on the connection.
        let direct = try Forward(["pod/box", ":9000"], env: ["KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"])
        try #require(direct.port > 0, "port-forward: \(direct.log)")
        let directMany = echoMany(port: direct.port, n: 20, size: 1_000_000)
        #expect(directMany.out.hasPrefix("20/20 ok"), "\(directMany)")

        // The connection is made inside the pod: a server bound to its 127.0.0.1 answers,
        // though no other pod reaches it.
        let lo = try Forward(["pod/lo", ":8081"])
        try #require(lo.port > 0, "port-forward: \(lo.log)")
        #expect(shell(["curl", "-s", "-m", "5", "http://127.0.0.1:\(lo.port)/"]).out == "only-on-loopback\n")
        let ip = try #require(liveState(name)?.pods.first { $0.name == "lo" }?.ip)
        #expect(kubectl(["exec", "box", "--", "timeout", "3", "wget", "-qO-", "http://\(ip):8081/"]).code != 0)
        // A Service: kubectl picks a pod and its target port.
        let svc = try Forward(["svc/lo", ":80"])
        try #require(svc.port > 0, "port-forward: \(svc.log)")
        #expect(shell(["curl", "-s", "-m", "5", "http://127.0.0.1:\(svc.port)/"]).out == "only-on-loopback\n")

        // minik port-forward: the same connection, made by the CLI.
        let cli = Process()
        cli.executableURL = URL(fileURLWithPath: minikBinary)
        cli.arguments = ["port-forward", "--name", name, "lo", "28181:8081"]
        let cliOut = Pipe()
        cli.standardOutput = cliOut
        try cli.run()
        defer { cli.terminate(); cli.waitUntilExit() }
        let announced = String(decoding: cliOut.fileHandleForReading.availableData, as: UTF8.self)
        #expect(announced == "Forwarding from 127.0.0.1:28181 -> 8081\n", "\(announced)")
        #expect(shell(["curl", "-s", "-m", "5", "http://127.0.0.1:28181/"]).out == "only-on-loopback\n")

        if hasPythonClient {
            let py = shell(["python3", "-c", """
                from kubernetes import client, config
                from kubernetes.stream import portforward
                config.load_kube_config()
                v1 = client.CoreV1Api()
                pf = portforward(v1.connect_get_namespaced_pod_portforward, "box", "default", ports="9000")
                s = pf.socket(9000)
                s.setblocking(True)
                s.settimeout(10)
                s.sendall(b"echoed through python\\n")
                data = b""
                while b"\\n" not in data:
                    data += s.recv(100)
                print(data.decode().strip(), pf.error(9000))
                s.close()
                """], env: ["KUBECONFIG": testKubeconfig])
            #expect(py.code == 0 && py.out.trimmed == "echoed through python None", "\(py)")
        }
    }
}
}
