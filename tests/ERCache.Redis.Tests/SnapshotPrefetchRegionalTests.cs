using ERCache.Redis.Tests.Infrastructure;
using Microsoft.Extensions.Time.Testing;

namespace ERCache.Redis.Tests;

/// <summary>A warm restart beside real Redis and Garnet with invalidation on (DESIGN §2 rules 10 and 11): the
/// restarted host prefetches its snapshots' users from the store, so a user another host removed while it was down is
/// not served, and the others are local hits from its first request.</summary>
public sealed class SnapshotPrefetchRegionalTests(SharedServers servers) : IClassFixture<SharedServers>, IDisposable
{
    private readonly string _directory = Path.Combine(Path.GetTempPath(), $"ercache-prefetch-{Guid.NewGuid():N}");

    public void Dispose()
    {
        if (Directory.Exists(_directory))
        {
            Directory.Delete(_directory, recursive: true);
        }
    }

    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task A_restarted_host_prefetches_its_snapshots_users_and_never_one_removed_while_it_was_down(ServerKind kind)
    {
        string connection = servers[kind].ConnectionString;
        long user = servers.Users(3);
        var clock = new FakeTimeProvider(RegionalHost.Start);
        void WithSnapshots(ERCacheOptions options) => options.Snapshots.Directory = _directory;
        await using (var before = new RegionalHost(connection, WithSnapshots, clock: clock))
        {
            await before.Cache.WhenReadyAsync();
            for (long u = user; u < user + 3; u++)
            {
                Assert.Equal(EmbeddingSource.Fresh, (await before.GetAsync(u)).Result.Source);
            }

            await before.Cache.FlushRegionalWritesAsync();
        } // the graceful stop writes the snapshots

        await using (var other = new RegionalHost(connection, clock: clock))
        {
            await other.Cache.WhenReadyAsync();
            await other.Cache.RemoveAsync(user + 1); // while the first host is down: it never hears of it
        }

        await using var restarted = new RegionalHost(connection, WithSnapshots, clock: clock);
        await restarted.Cache.WhenReadyAsync();
        restarted.Towers["ctr"].Failing = true; // anything served now comes from the tiers or the store

        Assert.Equal(2, restarted.Cache.GetTierStatistics("ctr", TierKind.Direct)!.Value.Count);
        Assert.Equal(EmbeddingSource.Direct, (await restarted.GetAsync(user)).Result.Source);
        Assert.Equal(EmbeddingSource.Direct, (await restarted.GetAsync(user + 2)).Result.Source);
        var (removed, _) = await restarted.GetAsync(user + 1);
        Assert.Equal((EmbeddingSource.Fallback, false), (removed.Source, removed.HasVector));
        var line = Assert.Single(restarted.Logs.GetSnapshot(), r => r.Id.Id == 43).Message;
        Assert.Contains(": 2 fresh, 0 for the failover tier only, 1 with no usable value", line, StringComparison.Ordinal);
    }
}
