using ERCache.Diagnostics;
using ERCache.Regional;
using ERCache.Testing;
using ERCache.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Tests;

/// <summary>The regional tier's settings reloaded on one thread while others look users up: every lookup sees one
/// whole set of settings, and each user gets its own value.</summary>
[Collection(SoakDefinition.Name)]
public sealed class RegionalReloadSoak
{
    [Fact]
    public async Task Hammer_lookups_while_the_settings_and_the_breaker_are_replaced_each_get_every_user_their_own_value()
    {
        const int Readers = 4, Lookups = 3_000, Users = 10;
        const string Field = "ctr:v1";
        var clock = new FakeTimeProvider();
        var store = new InMemoryRegionalStore(clock);
        for (long user = 1; user <= Users; user++)
        {
            store.Set(user, Field, BitConverter.GetBytes(user * 1_000_003), TimeSpan.FromHours(1));
        }

        using var metrics = new ERCacheMetrics(null);
        var tier = new RegionalTier(store, new RegionalOptions { MaxBatchSize = 3 }, clock, metrics, NullLogger.Instance);
        long[] users = [.. Enumerable.Range(1, Users).Select(u => (long)u)];
        int reading = Readers, wrong = 0, missing = 0, applied = 0;
        using var start = new ManualResetEventSlim();
        var readers = Enumerable.Range(0, Readers).Select(_ => new Thread(() =>
        {
            start.Wait();
            for (int i = 0; i < Lookups; i++)
            {
                var values = tier.ReadAsync(Field, 8, users, TimeSpan.FromSeconds(1), CancellationToken.None).GetAwaiter().GetResult();
                if (values is null)
                {
                    Interlocked.Increment(ref missing);
                    continue;
                }

                for (int u = 0; u < Users; u++)
                {
                    if (values[u] is not { } value || BitConverter.ToInt64(value) != users[u] * 1_000_003)
                    {
                        Interlocked.Increment(ref wrong);
                    }
                }
            }

            Interlocked.Decrement(ref reading);
        })).ToList();
        readers.ForEach(t => t.Start());

        start.Set();
        int round = 0;
        while (Volatile.Read(ref reading) > 0 || round == 0)
        {
            // Each round changes the batch size, the timeout and the breaker's settings (a new breaker each time).
            tier.Apply(new RegionalOptions
            {
                MaxBatchSize = 1 + (round % 16),
                Timeout = TimeSpan.FromMilliseconds(5 + (round % 7)),
                CircuitBreaker = new CircuitBreakerOptions { Enabled = round % 3 != 0, MinimumThroughput = 10 + (round % 5) },
            });
            round++;
            applied++;
        }

        readers.ForEach(t => t.Join());
        await tier.DisposeAsync();

        Assert.Equal(0, wrong);
        Assert.Equal(0, missing); // no lookup failed or timed out while its settings were replaced
        Assert.True(applied > 1);
        Assert.Equal(TimeSpan.FromMilliseconds(5 + ((round - 1) % 7)), tier.ReadTimeout);
    }
}
