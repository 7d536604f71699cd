using ERCache.Redis.Tests.Infrastructure;

namespace ERCache.Redis.Tests;

/// <summary>The regional tier on a Redis Cluster: a user's values share a slot (one hash per user, hash-tagged), no
/// command spans slots, a batch of users spread over every node is still one logical lookup, and removals are announced
/// on a sharded channel.</summary>
public sealed class ClusterTests
{
    [Fact]
    public async Task Hosts_share_embeddings_and_removals_through_a_three_node_cluster()
    {
        using var cluster = new RedisCluster();
        string[] models = ["ctr", "cvr"];
        await using var a = new RegionalHost(cluster.ConnectionString, models: models);
        await using var b = new RegionalHost(cluster.ConnectionString, models: models);
        await a.Cache.WhenReadyAsync(); // subscribed
        await b.Cache.WhenReadyAsync();
        long[] users = Enumerable.Range(1, 64).Select(u => (long)u).ToArray();
        var vectors = new float[users.Length * RegionalHost.Dimensions];
        var results = new EmbeddingResult[users.Length];
        foreach (string model in models)
        {
            await a.Cache.GetManyAsync(model, users, vectors, results);
        }

        await a.Cache.FlushRegionalWritesAsync();
        foreach (string model in models)
        {
            await b.Cache.GetManyAsync(model, users, vectors, results);
            Assert.All(results, r => Assert.Equal(EmbeddingSource.Regional, r.Source));
            for (int i = 0; i < users.Length; i++)
            {
                Assert.True(UserTower.BelongsTo(vectors.AsSpan(i * RegionalHost.Dimensions, RegionalHost.Dimensions), users[i]));
            }
        }

        Assert.Equal(0, RegionalHost.Sum(a.Failures) + RegionalHost.Sum(b.Failures)); // no CROSSSLOT, no MOVED left unhandled
        Assert.Equal(64, RegionalHost.Sum(a.Groups)); // one grouped write per user, both models in it
        Assert.All(cluster.Nodes, node => Assert.True(RedisCluster.KeysOn(node) > 0, $"node {node.Port} holds no user"));
        Assert.Equal(3 * 64, cluster.Nodes.Sum(RedisCluster.KeysOn)); // each user's two values and their stamps

        // A removal on a reaches b over the sharded channel: both hosts subscribe on the node that owns its slot, and no
        // plain subscription exists on any node.
        Assert.True(a.Store.InvalidationChannel.IsSharded);
        Assert.Equal(2, cluster.Nodes.Sum(n => RedisCluster.Subscribers(n, "SHARDNUMSUB")));
        Assert.Equal(0, cluster.Nodes.Sum(n => RedisCluster.Subscribers(n, "NUMSUB")));
        foreach (string model in models)
        {
            Assert.Equal(EmbeddingSource.Direct, (await b.GetAsync(users[0], model)).Result.Source);
        }

        b.Towers["ctr"].Failing = true;
        b.Towers["cvr"].Failing = true;
        await a.Cache.RemoveAsync(users[0]);
        await b.WhenAppliedAsync(1);
        Assert.Equal(1, RegionalHost.Sum(b.Invalidations, "direction", "applied"));
        foreach (string model in models)
        {
            var (result, _) = await b.GetAsync(users[0], model);
            Assert.Equal((EmbeddingSource.Fallback, false), (result.Source, result.HasVector));
        }
    }
}
