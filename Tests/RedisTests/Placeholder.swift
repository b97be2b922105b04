import XCTest
final class RedisPlaceholderTests: XCTestCase { func testNothing() {} }
