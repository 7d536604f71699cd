using ERCache.Models;

namespace ERCache.Tests;

/// <summary>A model name's result counts, by source; the test with several threads is in <c>ResultCountsSoak</c>.</summary>
public sealed class ResultCountsTests
{
    [Fact]
    public void Each_source_is_counted_apart_and_Served_sums_them()
    {
        var counts = new ResultCounts();
        counts.Count(EmbeddingSource.Direct);
        counts.Count(EmbeddingSource.Direct, 63); // a batch's hits in one add
        counts.Count(EmbeddingSource.Fallback);
        counts.Count(EmbeddingSource.Fallback, 0);

        Assert.Equal(64, counts.Of(EmbeddingSource.Direct));
        Assert.Equal(1, counts.Fallbacks);
        Assert.Equal(65, counts.Served);
        for (int source = 0; source < ResultCounts.Sources; source++)
        {
            var kind = (EmbeddingSource)source;
            if (kind is not EmbeddingSource.Direct and not EmbeddingSource.Fallback)
            {
                Assert.Equal(0, counts.Of(kind));
            }
        }
    }

    [Fact]
    public void Two_instances_count_apart_on_the_same_thread()
    {
        var first = new ResultCounts();
        var second = new ResultCounts();
        first.Count(EmbeddingSource.Direct, 5);
        second.Count(EmbeddingSource.Direct, 7);

        Assert.Equal(5, first.Served);
        Assert.Equal(7, second.Served);
    }

    [Fact]
    public void Regional_values_found_and_refused_are_counted_apart_from_results()
    {
        var counts = new ResultCounts();
        counts.CountRegional(found: 16, refused: 3);
        counts.CountRegional(found: 0, refused: 0); // a lookup that found nothing
        counts.CountRegional(found: 4, refused: 0);

        Assert.Equal((20, 3), (counts.RegionalFound, counts.RegionalRefused));
        Assert.Equal(0, counts.Served);
    }
}
