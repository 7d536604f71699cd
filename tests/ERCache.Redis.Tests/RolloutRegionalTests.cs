using ERCache.Redis.Tests.Infrastructure;
using ERCache.Testing;

namespace ERCache.Redis.Tests;

/// <summary>DESIGN §2 rule 10 across hosts, against real Redis and Garnet: a host warming a rollout's next version writes
/// it to the store under that version's field, so another host that switches later finds it there; a value of the old
/// version is never served as the new one.</summary>
public sealed class RolloutRegionalTests(SharedServers servers) : IClassFixture<SharedServers>
{
    [Theory]
    [InlineData(ServerKind.Redis)]
    [InlineData(ServerKind.Garnet)]
    public async Task Vectors_warmed_on_one_host_are_regional_hits_of_the_new_version_on_another(ServerKind kind)
    {
        long first = servers.Users(3);
        long[] warmed = [first, first + 1];
        long coldUser = first + 2;
        var dispatcher = new ManualInferenceDispatcher();
        await using var warming = new RegionalHost(
            servers[kind].ConnectionString, o => o.Models["ctr"].Rollout = new RolloutOptions { NextVersion = "v2" }, dispatcher: dispatcher);
        await using var old = new RegionalHost(servers[kind].ConnectionString);
        foreach (long user in warmed)
        {
            var (result, _) = await RunUntilDone(dispatcher, warming.GetAsync(user)); // its miss follows a real lookup
            Assert.Equal(("v1", EmbeddingSource.Fresh), (result.ModelVersion, result.Source));
        }

        await old.GetAsync(coldUser); // known to v1 only, locally and in the store
        warming.FakeClock.Advance(TimeSpan.FromSeconds(2)); // the warmer's timer asks for spare slots
        while (warming.Towers["ctr"].Users < 4) // two users, each for v1 and for v2
        {
            await dispatcher.WhenPendingAsync().WaitAsync(TimeSpan.FromSeconds(30));
            dispatcher.RunAll();
        }

        dispatcher.RunAll();
        Assert.Equal(4, warming.Towers["ctr"].Users);
        await warming.Cache.FlushRegionalWritesAsync();
        await old.Cache.FlushRegionalWritesAsync();

        // A host that starts on v2 ten seconds later: the warmed users are regional hits of v2 with their warm-up age.
        await using var switched = new RegionalHost(servers[kind].ConnectionString, version: "v2");
        switched.FakeClock.Advance(TimeSpan.FromSeconds(12));
        foreach (long user in warmed)
        {
            var (result, vector) = await switched.GetAsync(user);
            Assert.Equal((EmbeddingSource.Regional, "v2", TimeSpan.FromSeconds(10)), (result.Source, result.ModelVersion, result.Age));
            Assert.True(UserTower.BelongsTo(vector, user));
            Assert.False(UserTower.IsVersion1(vector, user));
        }

        // The user only v1 knows is inferred for v2: its v1 value in the store is never served as v2.
        var (cold, coldVector) = await switched.GetAsync(coldUser);
        Assert.Equal((EmbeddingSource.Fresh, "v2"), (cold.Source, cold.ModelVersion));
        Assert.False(UserTower.IsVersion1(coldVector, coldUser));
        Assert.Equal(1, switched.Towers["ctr"].Users);
    }

    /// <summary>Runs the manual dispatcher's calls until <paramref name="call"/> completes: a request reaches the
    /// scheduler only after its regional lookup, real I/O, while other work (the warmer's pass) may already wait.</summary>
    private static async Task<T> RunUntilDone<T>(ManualInferenceDispatcher dispatcher, Task<T> call)
    {
        while (!call.IsCompleted)
        {
            await Task.WhenAny(call, dispatcher.WhenPendingAsync()).WaitAsync(TimeSpan.FromSeconds(30));
            dispatcher.RunAll();
        }

        return await call;
    }
}
