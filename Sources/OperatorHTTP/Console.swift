import FlyingFox
import Foundation
import Ledger
import LedgerModel
import Redis

/// The operator console (`/console`): server-rendered pages over the queues, dead letters, one
/// user's story and the month's figures. It reads; the one thing it changes is where a dead
/// letter's job sits (requeued, as `tokenledger dead-letters requeue` does). Nothing in it can
/// change a balance.
///
/// Every Redis and SQLite read runs on `ConsoleReads`' serial queue, never on the cooperative
/// threads the async handlers share with `/metrics` and the worker (see `ReadinessChecker`).
final class Console: Sendable {
    let settings: ConsoleSettings
    let reads: ConsoleReads
    /// Per-process: forms carry it and POSTs must return it, so another site cannot post to the
    /// console from a signed-in browser (it cannot read the pages that carry it).
    let csrf: [UInt8]
    static let cookieName = "tokenledger_console"
    /// Page sizes: a limit on everything a page shows.
    static let deadPageSize = 50
    static let historyPageSize = 50
    static let maxMonitorsShown = 100
    static let maxHoldsShown = 100
    static let maxGrantsShown = 100
    static let balanceChartPoints = 200
    /// The most entries one month page reads per partition (the rest in the background, see
    /// `ConsoleReads.figures`): well under 50 ms of reading.
    static let monthMaxEntries = 20_000
    /// The most letters "requeue all" moves in one confirmation.
    static let requeueAllMax = 10_000

    init(settings: ConsoleSettings, redis: RedisTarget) {
        self.settings = settings
        self.reads = ConsoleReads(settings: settings, redis: redis)
        var generator = SystemRandomNumberGenerator()
        csrf = Array((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }).hexText
    }

    // MARK: - Authentication

    enum Access { case granted, refused }

    func access(_ request: HTTPRequest) -> Access {
        if let header = request.headers[.authorization] {
            let prefix = "Bearer "
            if header.utf8.starts(with: prefix.utf8), ConstantTime.equals(Array(header.utf8.dropFirst(prefix.utf8.count)), settings.token) {
                return .granted
            }
        }
        for value in request.headers.values(for: .cookie) {
            for part in value.split(separator: ";") {
                let trimmed = part.trimmingCharacters(in: .whitespaces)
                guard trimmed.utf8.starts(with: "\(Self.cookieName)=".utf8) else { continue }
                let encoded = String(trimmed.dropFirst(Self.cookieName.count + 1))
                if let token = Data(base64Encoded: encoded), ConstantTime.equals(Array(token), settings.token) { return .granted }
            }
        }
        return .refused
    }

    func handle(_ request: HTTPRequest) async -> HTTPResponse {
        let path = request.target.path(percentEncoded: true)
        let parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let query = FormData.parse(Array(request.target.query(percentEncoded: true).utf8))
        if request.method == .POST, parts == ["console", "signin"] { return await signIn(request) }
        guard access(request) == .granted else { return signInPage(status: .unauthorized, message: nil) }
        do {
            switch (request.method, parts.dropFirst().first) {
            case (.GET, nil): return try await overview()
            case (.GET, "dead"): return try await deadLetters(query)
            case (.POST, "dead"): return try await requeue(request)
            case (.GET, "users"):
                if parts.count >= 3, let id = parts[2].removingPercentEncoding { return try await user(id, query) }
                if let id = Self.value("id", query), !id.isEmpty {
                    return redirect("/console/users/\(HTML.component(String(decoding: id, as: UTF8.self)))")
                }
                return ok(HTML.page(title: "Users", body: userSearchForm()))
            case (.GET, "month"): return try await month(query)
            default: return HTTPResponse(statusCode: .notFound, headers: Self.headers, body: Data("not found\n".utf8))
            }
        } catch {
            return ok(HTML.page(title: "Error", body: "<p>The read failed: \(HTML.escape("\(error)"))</p>"), status: .serviceUnavailable)
        }
    }

    static let headers: HTTPHeaders = [
        .contentType: "text/html; charset=utf-8",
        .cacheControl: "no-store",
        HTTPHeader("Content-Security-Policy"): "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        HTTPHeader("X-Content-Type-Options"): "nosniff",
        HTTPHeader("Referrer-Policy"): "no-referrer",
    ]

    func ok(_ html: String, status: HTTPStatusCode = .ok) -> HTTPResponse {
        HTTPResponse(statusCode: status, headers: Self.headers, body: Data(html.utf8))
    }

    func redirect(_ location: String, cookie: String? = nil) -> HTTPResponse {
        var headers = Self.headers
        headers[.location] = location
        if let cookie { headers[.setCookie] = cookie }
        return HTTPResponse(statusCode: .seeOther, headers: headers, body: Data())
    }

    static func value(_ name: String, _ items: [(name: String, value: [UInt8])]) -> [UInt8]? {
        items.first(where: { $0.name == name })?.value
    }

    static func int(_ name: String, _ items: [(name: String, value: [UInt8])]) -> Int? {
        value(name, items).flatMap { Int(String(decoding: $0, as: UTF8.self)) }
    }

    var csrfField: String { HTML.hidden("csrf", String(decoding: csrf, as: UTF8.self)) }

    func signInPage(status: HTTPStatusCode, message: String?) -> HTTPResponse {
        let note = message.map { "<p><b>\(HTML.escape($0))</b></p>" } ?? ""
        let body = """
            \(note)<p>The console needs its token (or <code>Authorization: Bearer</code>).</p>
            <form method="post" action="/console/signin">\(csrfField)
            <label>Token <input type="password" name="token" autocomplete="off"></label> <button type="submit">Sign in</button></form>
            """
        return ok(HTML.page(title: "Sign in", body: body), status: status)
    }

    func signIn(_ request: HTTPRequest) async -> HTTPResponse {
        let form = FormData.parse(Array((try? await request.bodyData) ?? Data()))
        guard let sent = Self.value("csrf", form), ConstantTime.equals(sent, csrf) else {
            return signInPage(status: .forbidden, message: "The form is stale; sign in again.")
        }
        guard let token = Self.value("token", form), ConstantTime.equals(token, settings.token) else {
            return signInPage(status: .unauthorized, message: "Wrong token.")
        }
        // HttpOnly: no script reads it; Strict: no other site's link or form sends it.
        let cookie = "\(Self.cookieName)=\(Data(token).base64EncodedString()); Path=/console; HttpOnly; SameSite=Strict"
        return redirect("/console", cookie: cookie)
    }

    // MARK: - Pages

    func overview() async throws -> HTTPResponse {
        let states = try await reads.run { try $0.overview() }
        let rates = reads.sampler.rates()
        let minutes = ConsoleSampler.maxSamples * Int(ConsoleSampler.intervalSeconds) / 60
        /// One partition's jobs per second, oldest sample first.
        func series(_ column: Int) -> [(label: String, value: Int64)] {
            rates.map { (LedgerTime.format(ms: $0.atMs).dropFirst(11).prefix(8).description,
                         Int64(($0.perPartition.indices.contains(column) ? $0.perPartition[column] : 0).rounded())) }
        }
        var body = ""
        body += "<table><tr><th>Partition</th><th>Queue depth</th><th>Unsettled lists</th><th>Lease holder</th><th>Epoch</th><th>Dead letters</th><th>Ledger</th><th>WAL bytes</th><th>Jobs/s (last \(minutes) min)</th></tr>"
        for s in states {
            let lists = s.unsettled.isEmpty ? "none" : s.unsettled.map { "\(HTML.escape(bytes: $0.name)): \($0.length)" }.joined(separator: "<br>")
            body += "<tr><td>\(s.partition)</td><td>\(s.queueDepth)</td><td>\(lists)</td>"
            body += "<td>\(s.leaseHolder.map { HTML.escape(bytes: $0) } ?? "nobody")</td><td>\(s.epoch.map(String.init) ?? "none")</td>"
            body += "<td><a href=\"/console/dead?partition=\(s.partition)\">\(s.deadLetters)</a></td>"
            body += "<td>\(s.ledgerProblem.map { "not ready: " + HTML.escape($0) } ?? "ready")</td><td>\(s.walBytes)</td>"
            let column = settings.partitions.firstIndex { $0.index == s.partition } ?? 0
            let jobs = series(column)
            body += "<td class=\"rate\"><b>\(jobs.last.map { "\($0.value)" } ?? "-")</b> "
            body += HTML.barChart(jobs, title: "partition \(s.partition): jobs per second", width: 200, height: 40, labels: false) + "</td></tr>"
        }
        body += "</table>"
        body += "<h2>Jobs applied per second, all partitions (every \(Int(ConsoleSampler.intervalSeconds)) s, last \(minutes) minutes)</h2>"
        if rates.isEmpty { body += "<p>Collecting samples (the first rate shows after two of them).</p>" }
        body += HTML.barChart(rates.map { (LedgerTime.format(ms: $0.atMs).dropFirst(11).prefix(8).description, Int64($0.perPartition.reduce(0, +).rounded())) },
                              title: "jobs per second")
        return ok(HTML.page(title: "Overview", body: body))
    }

    func deadLetters(_ query: [(name: String, value: [UInt8])]) async throws -> HTTPResponse {
        let partition = Self.int("partition", query) ?? settings.partitions[0].index
        let offset = max(0, Self.int("offset", query) ?? 0)
        guard settings.partitions.contains(where: { $0.index == partition }) else { return notFound() }
        let page = try await reads.run { try $0.deadLetters(partition: partition, offset: offset, count: Self.deadPageSize) }
        var body = "<p>Partition: " + settings.partitions.map { "<a href=\"/console/dead?partition=\($0.index)\">\($0.index)</a>" }.joined(separator: " ") + "</p>"
        if let moved = Self.int("requeued", query) { body += "<p class=\"requeued\"><b>Requeued \(moved) job(s) at the front of the queue.</b></p>" }
        body += "<p>\(page.total) dead letter(s) in partition \(partition), newest first.</p>"
        body += "<form class=\"inline\" method=\"post\" action=\"/console/dead/requeue\">\(csrfField)\(HTML.hidden("partition", "\(partition)"))\(HTML.hidden("all", "1"))<button type=\"submit\">Requeue all…</button></form>"
        body += "<table id=\"dead\"><tr><th>#</th><th>Error</th><th>Raw job</th><th></th></tr>"
        for (i, letter) in page.letters.enumerated() {
            let parsed = DeadLetterView(letter)
            body += "<tr><td>\(offset + i)</td><td><pre>\(HTML.escape(parsed.error))</pre></td><td><pre class=\"job\">\(HTML.escape(bytes: parsed.job))</pre></td><td>"
            body += "<form method=\"post\" action=\"/console/dead/requeue\">\(csrfField)\(HTML.hidden("partition", "\(partition)"))\(HTML.hidden("letter", Data(letter).base64EncodedString()))<button type=\"submit\">Requeue…</button></form></td></tr>"
        }
        body += "</table>" + pager("/console/dead?partition=\(partition)&", offset: offset, size: Self.deadPageSize, total: page.total)
        return ok(HTML.page(title: "Dead letters", body: body))
    }

    func requeue(_ request: HTTPRequest) async throws -> HTTPResponse {
        let form = FormData.parse(Array((try? await request.bodyData) ?? Data()))
        guard let sent = Self.value("csrf", form), ConstantTime.equals(sent, csrf) else {
            return ok(HTML.page(title: "Refused", body: "<p>The form is stale or did not come from this console: nothing was requeued.</p>"), status: .forbidden)
        }
        guard let partition = Self.int("partition", form), settings.partitions.contains(where: { $0.index == partition }) else { return notFound() }
        let all = Self.value("all", form) == Array("1".utf8)
        let letter = Self.value("letter", form).flatMap { Data(base64Encoded: Data($0)) }.map { Array($0) }
        guard all || letter != nil else { return notFound() }
        if Self.value("confirm", form) != Array("yes".utf8) {
            // The confirmation step: the same form again, with confirm=yes.
            var fields = csrfField + HTML.hidden("partition", "\(partition)") + HTML.hidden("confirm", "yes")
            var what = "every dead letter of partition \(partition) (at most \(Self.requeueAllMax))"
            if all {
                fields += HTML.hidden("all", "1")
            } else if let letter {
                fields += HTML.hidden("letter", Data(letter).base64EncodedString())
                what = "this job:</p><pre>\(HTML.escape(bytes: DeadLetterView(letter).job))</pre><p>"
            }
            let body = "<p>Requeue \(what) at the front of the queue? The worker applies it as it would any job (a job id already applied answers its first result).</p>"
                + "<form method=\"post\" action=\"/console/dead/requeue\">\(fields)<button type=\"submit\" id=\"confirm\">Yes, requeue</button></form> <a href=\"/console/dead?partition=\(partition)\">Cancel</a>"
            return ok(HTML.page(title: "Confirm requeue", body: body))
        }
        let moved = try await reads.run { reads -> Int in
            if let letter, !all { return try reads.requeue(partition: partition, letter: letter) ? 1 : 0 }
            return try reads.requeueAll(partition: partition, max: Self.requeueAllMax)
        }
        return redirect("/console/dead?partition=\(partition)&requeued=\(moved)")
    }

    func userSearchForm(_ id: String = "") -> String {
        "<form method=\"get\" action=\"/console/users\"><label>User id <input name=\"id\" value=\"\(HTML.escape(id))\"></label> <button type=\"submit\">Show</button></form>"
    }

    func user(_ userId: String, _ query: [(name: String, value: [UInt8])]) async throws -> HTTPResponse {
        let offset = max(0, Self.int("offset", query) ?? 0)
        let type = Self.value("type", query).map { String(decoding: $0, as: UTF8.self) }.flatMap { $0.isEmpty ? nil : $0 }
        let story = try await reads.run { try $0.story(userId: userId, offset: offset, operationType: type) }
        var body = userSearchForm(userId)
        guard let balance = story.balance else {
            body += "<p>No account for <code>\(HTML.escape(userId))</code> in this ledger.</p>"
            return ok(HTML.page(title: "User", body: body), status: .notFound)
        }
        func text(_ key: String, _ from: [String: Any]) -> String {
            guard let v = from[key], !(v is NSNull) else { return "—" }
            return HTML.escape("\(v)")
        }
        body += "<h2 class=\"user-id\">\(HTML.escape(userId))</h2><div>"
        for (label, key) in [("Balance", "tokensBalance"), ("Held", "held"), ("Available", "available"), ("Spent", "tokensSpent"), ("Tier", "tier"),
                             ("Last renewal", "lastRenewalAt"), ("Next renewal", "nextRenewalDate"), ("Subscription expires", "subscriptionExpiresAt")] {
            body += "<span class=\"card\">\(label)<b>\(text(key, balance))</b></span>"
        }
        body += "</div><h2>Grants</h2><table><tr><th>Grant</th><th>Remaining</th><th>Expires</th></tr>"
        for g in ((balance["grants"] as? [[String: Any]]) ?? []).prefix(Self.maxGrantsShown) {
            body += "<tr><td>\(text("grantId", g))</td><td>\(text("remaining", g))</td><td>\(text("expiresAt", g))</td></tr>"
        }
        body += "</table><h2>Open holds</h2><table><tr><th>Hold</th><th>Amount</th><th>Operation</th><th>Expires</th><th>Metadata</th></tr>"
        for h in story.holds.prefix(Self.maxHoldsShown) {
            body += "<tr><td>\(text("holdId", h))</td><td>\(text("amount", h))</td><td>\(text("operationType", h))</td><td>\(text("expiresAt", h))</td><td><pre>\(Self.jsonText(h["metadata"]))</pre></td></tr>"
        }
        body += "</table><h2>Monitors</h2><table><tr><th>Monitor</th><th>Threshold</th></tr>"
        for m in story.monitors {
            body += "<tr><td>\(HTML.escape(m.monitorId))</td><td>\(m.threshold)</td></tr>"
        }
        body += "</table><h2>Balance over time (the newest \(Self.balanceChartPoints) entries)</h2>"
        body += HTML.lineChart(story.chart, title: "balance over time")
        let base = "/console/users/\(HTML.component(userId))?"
        body += "<h2>History</h2><form method=\"get\" action=\"/console/users/\(HTML.escape(HTML.component(userId)))\"><label>Operation type <input name=\"type\" value=\"\(HTML.escape(type ?? ""))\"></label> <button type=\"submit\">Filter</button></form>"
        body += "<table id=\"history\"><tr><th>Entry</th><th>When</th><th>Operation</th><th>Amount</th><th>Balance after</th><th>Job</th><th>Metadata</th></tr>"
        for e in story.entries {
            body += "<tr><td>\(text("id", e))</td><td>\(text("createdAt", e))</td><td>\(text("operationType", e))</td><td>\(text("tokensAmount", e))</td><td>\(text("balanceAfter", e))</td><td>\(text("jobId", e))</td><td><pre class=\"metadata\">\(Self.jsonText(e["metadata"]))</pre></td></tr>"
        }
        body += "</table>" + pager(HTML.escape(base + (type.map { "type=\(HTML.component($0))&" } ?? "")), offset: offset, size: Self.historyPageSize, total: story.historyTotal)
        return ok(HTML.page(title: "User", body: body))
    }

    /// Metadata as the producer sent it (JSON), escaped for display.
    static func jsonText(_ value: Any?) -> String {
        guard let value, !(value is NSNull) else { return "" }
        if let s = value as? String { return HTML.escape(s) }
        guard JSONSerialization.isValidJSONObject(value), let data = try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return HTML.escape("\(value)")
        }
        return HTML.escape(String(decoding: data, as: UTF8.self))
    }

    func month(_ query: [(name: String, value: [UInt8])]) async throws -> HTTPResponse {
        let asked = Self.value("month", query).map { String(decoding: $0, as: UTF8.self) }
        let calendar = Self.utc
        let now = Date()
        var start = calendar.date(from: calendar.dateComponents([.year, .month], from: now)) ?? now
        if let asked, let parsed = Self.monthFormat(asked) { start = parsed }
        let end = calendar.date(byAdding: .month, value: 1, to: start) ?? start
        let startMs = LedgerTime.milliseconds(start), endMs = LedgerTime.milliseconds(end)
        let figures = try await reads.run { try $0.figures(startMs: startMs, endMs: endMs, maxEntries: Self.monthMaxEntries) }
        let label = String(LedgerTime.format(ms: startMs).prefix(7))
        var body = "<form method=\"get\" action=\"/console/month\"><label>Month <input name=\"month\" value=\"\(HTML.escape(label))\"></label> <button type=\"submit\">Show</button></form>"
        body += "<p class=\"read\">\(figures.entriesRead) entries counted\(figures.truncated ? "; the month has more, read on in the background (\(Self.monthMaxEntries) entries per partition a step): reload to see them counted" : "").</p>"
        let day: Int64 = 86_400_000
        let days = stride(from: startMs, to: endMs, by: Int(day)).map { $0 }
        func dayLabel(_ ms: Int64) -> String { String(LedgerTime.format(ms: ms).dropFirst(8).prefix(2)) }
        body += "<h2>Tokens spent per day</h2>"
        body += HTML.barChart(days.map { (dayLabel($0), figures.spentByDay[$0]?.values.reduce(0, +) ?? 0) }, title: "tokens spent per day")
        var types: [[UInt8]: Int64] = [:]
        for (_, byType) in figures.spentByDay { for (t, v) in byType { types[t, default: 0] += v } }
        body += "<h2>Tokens spent by operation</h2>"
        body += HTML.barChart(types.sorted { $0.value > $1.value }.prefix(20).map { (String(decoding: $0.key, as: UTF8.self), $0.value) }, title: "tokens spent by operation")
        body += "<h2>Credits against debits per day</h2>"
        body += HTML.pairChart(days.map { (dayLabel($0), figures.creditedByDay[$0] ?? 0, figures.debitedByDay[$0] ?? 0) },
                               names: ("credits", "debits"), title: "credits against debits per day")
        body += "<h2>Purchases by tier (the buyer's tier now)</h2>"
        body += HTML.barChart(figures.purchasesByTier.sorted { $0.value > $1.value }.prefix(20).map { (String(decoding: $0.key, as: UTF8.self), $0.value) }, title: "purchases by tier")
        body += "<h2>Renewals per run (per day)</h2>"
        body += HTML.barChart(days.map { (dayLabel($0), figures.renewalsByDay[$0] ?? 0) }, title: "renewals per day")
        body += "<h2>Tokens lapsed</h2><p class=\"card\">Lapsed<b>\(figures.tokensLapsed)</b></p>"
        return ok(HTML.page(title: "The month's figures \(label)", body: body))
    }

    static let utc: Calendar = {
        var c = Calendar(identifier: .gregorian)
        c.timeZone = TimeZone(identifier: "UTC") ?? .gmt
        return c
    }()

    /// `YYYY-MM`, or nil.
    static func monthFormat(_ text: String) -> Date? {
        let parts = text.split(separator: "-")
        guard parts.count == 2, let y = Int(parts[0]), let m = Int(parts[1]), (1970...9999).contains(y), (1...12).contains(m) else { return nil }
        return utc.date(from: DateComponents(year: y, month: m, day: 1))
    }

    func pager(_ base: String, offset: Int, size: Int, total: Int) -> String {
        var out = "<p>"
        if offset > 0 { out += "<a href=\"\(base)offset=\(max(0, offset - size))\">Newer</a> " }
        out += "\(total == 0 ? 0 : offset + 1)–\(min(total, offset + size)) of \(total)"
        if offset + size < total { out += " <a href=\"\(base)offset=\(offset + size)\" class=\"older\">Older</a>" }
        return out + "</p>"
    }

    func notFound() -> HTTPResponse { HTTPResponse(statusCode: .notFound, headers: Self.headers, body: Data("not found\n".utf8)) }
}

/// A dead letter split into what the page shows: its raw job and its error.
struct DeadLetterView {
    let job: [UInt8]
    let error: String

    init(_ letter: [UInt8]) {
        job = DeadLetters.rawJob(of: letter) ?? letter
        let object = try? JSONSerialization.jsonObject(with: Data(letter)) as? [String: Any]
        if let e = object?["error"] as? [String: Any] {
            error = "\(e["code"] ?? "?"): \(e["message"] ?? "")" + ((object?["failedAt"]).map { "\n\($0)" } ?? "")
        } else {
            error = "(no error recorded)"
        }
    }
}

extension Array where Element == UInt8 {
    /// Lower-case hex, as bytes.
    var hexText: [UInt8] {
        let digits = Array("0123456789abcdef".utf8)
        return flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] }
    }
}
