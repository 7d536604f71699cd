using ERCache.Redis;
using ERCache.Redis.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Testing;

namespace ERCache.Redis.Tests;

/// <summary>An operator can see the store's connection trouble: the endpoint, the failure and the error.</summary>
public sealed class StoreLoggingTests
{
    [Fact]
    public void A_store_that_cannot_be_reached_is_logged_with_its_endpoint_and_the_failure()
    {
        int port = StoreServer.FreePort(); // nothing listens there
        var logs = new FakeLogCollector();
        using var factory = new LoggerFactory([new FakeLoggerProvider(logs)]);

        using var store = RedisRegionalStore.Connect($"127.0.0.1:{port},connectTimeout=200", factory);

        var warning = logs.GetSnapshot().First(r => r.Id.Id == 100);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains($"The regional store at 127.0.0.1:{port} is unreachable (UnableToConnect)", warning.Message, StringComparison.Ordinal);
        Assert.Equal(typeof(RedisRegionalStore).FullName, warning.Category);
    }
}
