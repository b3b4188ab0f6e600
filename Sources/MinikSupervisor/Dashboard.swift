// The supervisor's dashboard: the page's drawing and traces come from this cluster's
// state and kernel (MinikRuntime's Topology and Trace); the URL with its token is written
// for `minik dashboard` to print, readable by root only.
import Foundation
import MinikAPIServer
import MinikRuntime

extension ClusterAPI {
    public static func dashboardFile(_ cluster: String) -> String { "\(Naming.clusterDir(cluster))/dashboard.url" }

    /// Starts the dashboard on 127.0.0.1 (a free port) and writes its URL.
    public func startDashboard() throws(APIServerError) {
        guard let server else { return }
        let runtime = self.runtime
        let providers = DashboardServer.Providers(
            cluster: runtime.spec.name,
            graphSVG: {
                do { return .success(try Topology.read(runtime.state()).svg()) } catch {
                    return .failure(APIServerError(description: "\(error)"))
                }
            },
            trace: { q in
                func failure(_ code: Int, _ text: String) -> (Int, [UInt8]) {
                    let body = (try? JSONSerialization.data(withJSONObject: ["error": text])) ?? Data()
                    return (code, Array(body))
                }
                guard let from = q["from"], let to = q["to"] else { return failure(400, "a trace needs from and to") }
                do {
                    let report = try Trace.request(runtime.state(), from: from, to: to, namespace: q["namespace"] ?? "default",
                                                   port: q["port"].flatMap { $0.isEmpty ? nil : $0 })
                    return (200, Array(try report.json().utf8))
                } catch {
                    return failure(400, "\(error)")
                }
            })
        let dashboard = DashboardServer(api: server, providers: providers)
        let port = try dashboard.listen(port: 0)
        let path = Self.dashboardFile(runtime.spec.name)
        let text = "http://127.0.0.1:\(port)/?token=\(dashboard.token)\n"
        guard FileManager.default.createFile(atPath: path + ".tmp", contents: Data(text.utf8), attributes: [.posixPermissions: 0o600]),
              rename(path + ".tmp", path) == 0 else {
            dashboard.close()
            throw APIServerError(description: "cannot write \(path)")
        }
        self.dashboard = dashboard
    }
}
