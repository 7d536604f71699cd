using ERCache.Redis.Tests.Infrastructure;

namespace ERCache.Redis.Tests;

/// <summary>The regional tier on a Redis Cluster: a user's values share a slot (one hash per user, hash-tagged), no
/// command spans slots, and a batch of users spread over every node is still one logical lookup.</summary>
public sealed class ClusterTests
{
    [Fact]
    public async Task Hosts_share_embeddings_through_a_three_node_cluster()
    {
        using var cluster = new RedisCluster();
        string[] models = ["ctr", "cvr"];
        await using var a = new RegionalHost(cluster.ConnectionString, models: models);
        await using var b = new RegionalHost(cluster.ConnectionString, models: models);
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
        Assert.Equal(2 * 64, cluster.Nodes.Sum(RedisCluster.KeysOn)); // each user's values and their stamps
    }
}
