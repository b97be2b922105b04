import XCTest
final class WorkerPlaceholderTests: XCTestCase { func testNothing() {} }
