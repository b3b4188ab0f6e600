// The supervisor: one process per cluster that builds it, owns its pause sandboxes
// (their parent: it reaps them), keeps the state file, and serves the CLI on the control
// socket until `down`. `minik up` starts it detached (own session) and reads its progress
// lines from a pipe on stdout:
//   "progress: <text>" ... then "ready", or "error: <text>" / "refused: <text>".
// If it is killed, the cluster keeps running; `minik up` of the same cluster starts a new
// supervisor that adopts it (ClusterRuntime.adopt), and `down` cleans up without one.
import Foundation
import MinikAPI
import MinikRuntime
import MinikSpec

public final class Supervisor: @unchecked Sendable {
    let runtime: ClusterRuntime
    let out: Int32
    /// The cluster's lock, held until the cluster is built (or rolled back).
    let lock: ClusterLock
    /// One apply/delete/scale at a time.
    let updates = NSLock()
    /// The Kubernetes API the cluster serves.
    let api: ClusterAPI

    public init(runtime: ClusterRuntime, progress out: Int32, lock: ClusterLock) {
        self.runtime = runtime
        self.out = out
        self.lock = lock
        self.api = ClusterAPI(runtime: runtime, updates: updates)
    }

    /// A progress line for `up`. `up` may be gone (killed): then nobody reads, and the
    /// write's EPIPE is ignored; the cluster is built all the same.
    func say(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(out, $0.baseAddress, $0.count) }
    }

    /// Builds the cluster (or adopts the running one `adopting` describes, whose
    /// supervisor died), then serves until `down`. Never returns normally.
    public func run(adopting old: ClusterState? = nil) -> Never {
        signal(SIGPIPE, SIG_IGN)
        // Two descriptors per container for its logs, one per node and more: the default
        // soft limit of 1024 would cap a cluster at a few hundred containers. (Containers
        // inherit it, as Docker's get 1048576.)
        var files = rlimit()
        if getrlimit(Int32(RLIMIT_NOFILE.rawValue), &files) == 0 && files.rlim_cur < files.rlim_max {
            files.rlim_cur = files.rlim_max
            setrlimit(Int32(RLIMIT_NOFILE.rawValue), &files)
        }
        startReaper()
        // SIGTERM/SIGINT while building (Ctrl-C of `up`): stop and roll back.
        var interrupts: [DispatchSourceSignal] = []
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [runtime] in runtime.interrupt() }
            s.resume()
            interrupts.append(s)
        }
        do {
            try api.prepare()
            if let old {
                try runtime.adopt(old) { say("progress: \($0)") }
            } else {
                try runtime.up { say("progress: \($0)") }
            }
        } catch {
            say("error: \(error)")
            lock.release()
            exit(1)
        }
        let listener: Int32
        do {
            let port = old?.apiServer.flatMap { $0.split(separator: ":").last.flatMap { Int($0) } }
            try api.start(port: port, revision: old?.apiRevision)
            try api.startDashboard()
        } catch {
            say("error: the Kubernetes API: \(error)")
            if old == nil { runtime.down() }
            lock.release()
            exit(1)
        }
        do { listener = try ControlSocket.listen(path: Naming.socketPath(runtime.spec.name)) } catch {
            say("error: \(error)")
            // A cluster this supervisor built goes; one it was adopting was running before
            // and is left as it is.
            if old == nil { runtime.down() }
            lock.release()
            exit(1)
        }
        interrupts.forEach { $0.cancel() }
        for sig in [SIGTERM, SIGINT] { signal(sig, SIG_DFL) }
        say("ready")
        lock.release()
        // Progress is over: let go of the pipe so `up` sees EOF and returns.
        let null = open("/dev/null", O_WRONLY)
        dup2(null, 1)
        close(null)
        serve(listener)
    }

    /// The sandboxes are our children: reap them as they die so none stays a zombie.
    func startReaper() {
        Children.reaperStarted()
        let t = Thread { [self] in
            while true {
                var status: Int32 = 0
                let pid = waitpid(-1, &status, 0)
                if pid < 0 {
                    if errno == ECHILD { usleep(50_000) }
                    continue
                }
                if Children.deliver(pid: pid, status: status) { continue }
                self.runtime.reaped(pid: pid, status: status)
            }
        }
        t.start()
    }

    func serve(_ listener: Int32) -> Never {
        while true {
            let fd = accept(listener, nil, nil)
            if fd < 0 { continue }
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            let t = Thread { [self] in handle(fd) }
            t.start()
        }
    }

    func handle(_ fd: Int32) {
        defer { close(fd) }
        guard let line = ControlSocket.readLine(fd),
              let req = try? ControlSocket.decoder.decode(ControlRequest.self, from: line) else {
            reply(fd, ControlResponse(ok: false, message: "bad request"))
            return
        }
        switch req.op {
        case .ping:
            reply(fd, ControlResponse(ok: true, message: "pong"))
        case .status:
            reply(fd, ControlResponse(ok: true, state: runtime.state()))
        case .trace:
            guard let t = req.trace else { reply(fd, ControlResponse(ok: false, message: "nothing to trace")); return }
            do {
                let report = try Trace.request(runtime.state(), from: t.source, to: t.destination, namespace: t.namespace,
                                               port: t.port, size: t.size, live: t.live)
                var r = ControlResponse(ok: true)
                r.body = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
                reply(fd, r)
            } catch {
                reply(fd, ControlResponse(ok: false, message: "\(error)"))
            }
        case .check:
            guard let check = req.check else { reply(fd, ControlResponse(ok: false, message: "nothing to check")); return }
            do {
                let out = try SpecLoader.apply(check.text, file: check.file, to: runtime.spec)
                var r = ControlResponse(ok: true)
                r.warnings = out.warnings
                reply(fd, r)
            } catch {
                reply(fd, ControlResponse(ok: false, message: error.description))
            }
        case .api:
            guard let call = req.api, let handler = api.server?.handler else {
                reply(fd, ControlResponse(ok: false, message: "the API is not serving"))
                return
            }
            let (path, query) = APIRequest.split(call.uri)
            let response = handler.handle(APIRequest(method: call.method, path: path, query: query, accept: call.accept,
                                                     contentType: call.contentType, body: Array(call.body.utf8), user: "minik"))
            var r = ControlResponse(ok: true)
            switch response {
            case .json(let code, let body, _, let warnings):
                r.status = code
                r.body = body.text
                r.warnings = warnings
            case .watch, .logs:
                r.status = 400
                r.body = APIError.badRequest("watches and logs are served over HTTPS only").status.text
            }
            reply(fd, r)
        case .down:
            let started = Date()
            runtime.down()
            let ms = Int(Date().timeIntervalSince(started) * 1000)
            reply(fd, ControlResponse(ok: true, message: "removed in \(ms) ms"))
            exit(0)
        }
    }

    /// The cluster's supervisor (as its state records it) still runs.
    public static func isRunning(_ state: ClusterState) -> Bool {
        Sandbox.isAlive(state.supervisorPID, startTime: state.supervisorStartTime)
    }

    /// When the state was last written by a supervisor, for "not running since".
    public static func lastSeen(_ state: ClusterState) -> String {
        guard let at = state.savedAt else { return "an unknown time" }
        let ago = Int(Date().timeIntervalSince(at))
        return "\(ClusterState.isoString(at)), \(ago >= 120 ? "\(ago / 60) min" : "\(ago) s") ago"
    }

    func reply(_ fd: Int32, _ r: ControlResponse) {
        guard let data = try? ControlSocket.encoder.encode(r) else { return }
        _ = ControlSocket.writeAll(fd, data + [0x0a])
    }
}
