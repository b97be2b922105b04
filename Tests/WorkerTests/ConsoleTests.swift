import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import OperatorHTTP
import Redis
import TestSupport
import XCTest

/// Refuses redirects, so a test sees the 303 and its Set-Cookie itself.
final class NoRedirects: NSObject, URLSessionTaskDelegate, @unchecked Sendable {
    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        completionHandler(nil)
    }
}

/// The console of the real worker, over HTTP, against a real redis-server and ledger file.
final class ConsoleTests: XCTestCase {
    static let token = "console-test-token-0123456789abcdef"
    let session: URLSession = {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.httpShouldSetCookies = false
        configuration.httpCookieAcceptPolicy = .never
        return URLSession(configuration: configuration, delegate: NoRedirects(), delegateQueue: nil)
    }()

    struct Answer {
        var status: Int
        var body: String
        var headers: [AnyHashable: Any]
    }

    func request(_ url: String, method: String = "GET", bearer: String? = ConsoleTests.token, cookie: String? = nil,
                 form: [(String, String)]? = nil) async throws -> Answer {
        var request = URLRequest(url: URL(string: url)!)
        request.timeoutInterval = 10
        request.httpMethod = method
        if let bearer { request.setValue("Bearer \(bearer)", forHTTPHeaderField: "Authorization") }
        if let cookie { request.setValue(cookie, forHTTPHeaderField: "Cookie") }
        if let form {
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            let body = form.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed)!)" }.joined(separator: "&")
            request.httpBody = Data(body.utf8)
            request.setValue("application/x-www-form-urlencoded", forHTTPHeaderField: "Content-Type")
        }
        let (data, response) = try await session.data(for: request)
        let http = response as! HTTPURLResponse
        return Answer(status: http.statusCode, body: String(decoding: data, as: UTF8.self), headers: http.allHeaderFields)
    }

    func startWorker(_ h: WorkerHarness, token: String?) async throws -> (WorkerProcess, String) {
        let port = TestEnvironment.freePort()
        let worker = try WorkerProcess(h, workerId: "console", extraArguments: ["--http", "127.0.0.1:\(port)"],
                                       environment: token.map { ["TOKENLEDGER_CONSOLE_TOKEN": $0] } ?? [:])
        let base = "http://127.0.0.1:\(port)"
        for _ in 0..<200 {
            if (try? await request("\(base)/healthz")) != nil { return (worker, base) }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTFail("the worker's endpoints never answered: \(worker.log)")
        return (worker, base)
    }

    /// The CSRF value a page's forms carry.
    func csrf(in html: String) throws -> String {
        let marker = "name=\"csrf\" value=\""
        let start = try XCTUnwrap(html.range(of: marker), "no CSRF field in \(html.prefix(400))")
        let rest = html[start.upperBound...]
        return String(rest[..<rest.firstIndex(of: "\"")!])
    }

    func testConstantTimeEquals() {
        XCTAssertTrue(ConstantTime.equals(Array("abc".utf8), Array("abc".utf8)))
        XCTAssertFalse(ConstantTime.equals(Array("abc".utf8), Array("abd".utf8)))
        XCTAssertFalse(ConstantTime.equals(Array("abc".utf8), Array("abcd".utf8)), "a prefix is not the token")
        XCTAssertFalse(ConstantTime.equals([], Array("a".utf8)))
        XCTAssertTrue(ConstantTime.equals([], []))
        // Lengths 256 apart must not fold to equal.
        XCTAssertFalse(ConstantTime.equals([], [UInt8](repeating: 0, count: 256)))
        // Canonically equivalent spellings are different tokens: bytes, not String equality.
        XCTAssertFalse(ConstantTime.equals(Array("\u{E9}".utf8), Array("e\u{301}".utf8)))
    }

    func testConsoleIsOffWithoutAToken() async throws {
        let server = try RedisServerProcess()
        let h = try WorkerHarness(redisURL: server.url)
        let (worker, base) = try await startWorker(h, token: nil)
        defer { _ = worker.terminate() }
        let answer = try await request("\(base)/console")
        XCTAssertEqual(answer.status, 404, "no token, no console")
        let metrics = try await request("\(base)/metrics")
        XCTAssertEqual(metrics.status, 200)
        XCTAssertEqual(worker.terminate(), 0, worker.log)
    }

    /// The token is checked once, at start: too short, or set with the endpoints off, the worker
    /// refuses to start; from a file (its trailing newline dropped) it opens the console.
    func testTheTokenIsValidatedAtStartAndReadFromAFile() async throws {
        let server = try RedisServerProcess()
        let h = try WorkerHarness(redisURL: server.url)
        let common = ["worker", "--redis-url", h.redisURL, "--database", h.databasePath, "--prefix", h.keys.prefix]
        let (short, shortOutput) = try runTokenLedger(common + ["--http", "127.0.0.1:\(TestEnvironment.freePort())"],
                                                      environment: ["TOKENLEDGER_CONSOLE_TOKEN": "short"])
        XCTAssertNotEqual(short, 0)
        XCTAssertTrue(shortOutput.contains("at least 16 bytes"), shortOutput)
        let (off, offOutput) = try runTokenLedger(common + ["--http", "off"], environment: ["TOKENLEDGER_CONSOLE_TOKEN": Self.token])
        XCTAssertNotEqual(off, 0)
        XCTAssertTrue(offOutput.contains("TOKENLEDGER_HTTP=off"), offOutput)

        let file = h.directory.appendingPathComponent("console-token").path
        try Data((Self.token + "\n").utf8).write(to: URL(fileURLWithPath: file))
        let port = TestEnvironment.freePort()
        let worker = try WorkerProcess(h, workerId: "from-file", extraArguments: ["--http", "127.0.0.1:\(port)"],
                                       environment: ["TOKENLEDGER_CONSOLE_TOKEN_FILE": file])
        defer { _ = worker.terminate() }
        let base = "http://127.0.0.1:\(port)"
        var status = 0
        for _ in 0..<200 {
            status = (try? await request("\(base)/console"))?.status ?? 0
            if status != 0 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        XCTAssertEqual(status, 200, worker.log)
        XCTAssertEqual(worker.terminate(), 0, worker.log)
    }

    func testConsolePagesAuthEscapingAndRequeue() async throws {
        let server = try RedisServerProcess()
        let h = try WorkerHarness(redisURL: server.url)
        let (worker, base) = try await startWorker(h, token: Self.token)
        defer { _ = worker.terminate() }

        // A user id and metadata carrying markup and both quotes.
        let evil = #"<script>alert("x")</script>'q"#
        _ = try h.call(["type": "open", "id": "c1", "userId": evil])
        _ = try h.call(["type": "debit", "id": "c2", "userId": evil, "operationType": "op<b>", "amount": 5,
                        "metadata": ["note": #"<script>alert('m')</script>""#]])
        _ = try h.call(["type": "open", "id": "c3", "userId": "plain"])
        let path = "/console/users/" + evil.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!

        // Every console path without the token, or with a wrong one, is 401.
        for p in ["/console", "/console/dead", path, "/console/month", "/console/users"] {
            let bare = try await request(base + p, bearer: nil)
            XCTAssertEqual(bare.status, 401, p)
            XCTAssertFalse(bare.body.contains("plain") || bare.body.contains("alert"), "a refusal shows no data: \(p)")
            let wrong = try await request(base + p, bearer: "console-test-token-0123456789abcdeX")
            XCTAssertEqual(wrong.status, 401, p)
            let badCookie = try await request(base + p, bearer: nil, cookie: "tokenledger_console=bm90LXRoZS10b2tlbg==")
            XCTAssertEqual(badCookie.status, 401, p)
        }
        let anonymousPost = try await request("\(base)/console/dead/requeue", method: "POST", bearer: nil,
                                              form: [("partition", "0"), ("all", "1"), ("confirm", "yes")])
        XCTAssertEqual(anonymousPost.status, 401)

        // With the token, each page answers 200; the charts are SVG.
        for p in ["/console", "/console/dead", path, "/console/month", "/console/users"] {
            let page = try await request(base + p)
            XCTAssertEqual(page.status, 200, "\(p): \(page.body.prefix(300))")
            XCTAssertTrue(page.body.hasPrefix("<!doctype html>"), p)
            XCTAssertFalse(page.body.contains("<script"), "\(p) carries raw markup from a producer")
        }
        let userPage = try await request(base + path)
        XCTAssertTrue(userPage.body.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#39;q"), "the user id, escaped")
        XCTAssertTrue(userPage.body.contains(#"&lt;script&gt;alert(&#39;m&#39;)&lt;/script&gt;\&quot;"#), "the metadata, escaped: \(userPage.body)")
        XCTAssertTrue(userPage.body.contains("op&lt;b&gt;"))
        XCTAssertTrue(userPage.body.contains("<svg"), "the balance chart")
        let monthPage = try await request("\(base)/console/month")
        XCTAssertTrue(monthPage.body.contains("<svg"), "the month's charts")

        // The sign-in form sets a cookie that then opens the pages.
        let signIn = try await request("\(base)/console", bearer: nil)
        let signInCSRF = try csrf(in: signIn.body)
        let forged = try await request("\(base)/console/signin", method: "POST", bearer: nil,
                                       form: [("token", Self.token), ("csrf", "forged")])
        XCTAssertEqual(forged.status, 403, "sign-in without the form's CSRF value")
        let signedIn = try await request("\(base)/console/signin", method: "POST", bearer: nil,
                                         form: [("token", Self.token), ("csrf", signInCSRF)])
        XCTAssertEqual(signedIn.status, 303)
        let setCookie = try XCTUnwrap(signedIn.headers["Set-Cookie"] as? String)
        XCTAssertTrue(setCookie.contains("HttpOnly") && setCookie.contains("SameSite=Strict"), setCookie)
        let cookie = String(setCookie.split(separator: ";")[0])
        let withCookie = try await request("\(base)/console", bearer: nil, cookie: cookie)
        XCTAssertEqual(withCookie.status, 200)

        // A dead letter whose job is valid (its cause mended): requeued through the console, it applies.
        let job = #"{"type":"open","id":"dl-1","userId":"revived"}"#
        let letter = try JSONSerialization.data(withJSONObject: ["job": job, "error": ["code": "storage_error", "message": "<b>disk</b>"],
                                                                 "failedAt": "2026-12-01T00:00:00.000Z"])
        _ = try h.redis.lpush(h.keys.dead, Array(letter))
        let deadPage = try await request("\(base)/console/dead")
        XCTAssertTrue(deadPage.body.contains("&lt;b&gt;disk&lt;/b&gt;"), "the error, escaped")
        XCTAssertTrue(deadPage.body.contains("dl-1"))
        let token = try csrf(in: deadPage.body)
        let encoded = Data(letter).base64EncodedString()
        // Without the CSRF value (or with a wrong one), nothing moves.
        for fields in [[("partition", "0"), ("letter", encoded), ("confirm", "yes")],
                       [("partition", "0"), ("letter", encoded), ("confirm", "yes"), ("csrf", "x" + token.dropFirst())]] {
            let refused = try await request("\(base)/console/dead/requeue", method: "POST", form: fields)
            XCTAssertEqual(refused.status, 403)
        }
        XCTAssertEqual(try h.redis.llen(h.keys.dead), 1)
        // The first post only asks for confirmation.
        let confirm = try await request("\(base)/console/dead/requeue", method: "POST",
                                        form: [("partition", "0"), ("letter", encoded), ("csrf", token)])
        XCTAssertEqual(confirm.status, 200)
        XCTAssertTrue(confirm.body.contains("name=\"confirm\" value=\"yes\""), confirm.body)
        XCTAssertEqual(try h.redis.llen(h.keys.dead), 1, "not before the confirmation")
        let done = try await request("\(base)/console/dead/requeue", method: "POST",
                                     form: [("partition", "0"), ("letter", encoded), ("csrf", token), ("confirm", "yes")])
        XCTAssertEqual(done.status, 303)
        XCTAssertEqual(try h.redis.llen(h.keys.dead), 0)
        try h.eventually(timeout: 30, "the requeued job applied") {
            try h.call(["type": "balance", "id": "q-\(UUID().uuidString)", "userId": "revived"])["success"] as? Bool == true
        }
        // The overview counts what is left.
        let overview = try await request("\(base)/console")
        XCTAssertTrue(overview.body.contains("ready"), overview.body)
        XCTAssertEqual(worker.terminate(), 0, worker.log)
    }
}
