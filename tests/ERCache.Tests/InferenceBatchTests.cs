using ERCache.Inference;

namespace ERCache.Tests;

public sealed class InferenceBatchTests
{
    private static InferenceBatch Batch(int count, int dims)
    {
        var b = new InferenceBatch("m", "v", dims, count);
        for (int i = 0; i < count; i++)
        {
            b.UsersToFill[i] = 100 + i;
        }

        return b;
    }

    [Fact]
    public void Rows_start_invalid_so_an_unwritten_row_is_never_cached()
    {
        var b = Batch(2, 3);
        b.GetRow(0).Span.Fill(1);

        Assert.Equal(InferenceFailureCause.None, FailureClassifier.OfRow(b.StatusOf(0), b.Row(0)));
        Assert.Equal(InferenceFailureCause.InvalidVector, FailureClassifier.OfRow(b.StatusOf(1), b.Row(1)));
        Assert.Equal([100L, 101L], b.UserIds.ToArray());
        Assert.Equal(6, b.Destination.Length);
        b.Release();
    }

    [Theory]
    [InlineData(float.NaN)]
    [InlineData(float.PositiveInfinity)]
    [InlineData(float.NegativeInfinity)]
    public void Any_non_finite_value_anywhere_in_a_row_is_invalid(float value)
    {
        foreach (int dims in new[] { 1, 7, 8, 9, 33, 256 })
        {
            for (int at = 0; at < dims; at++)
            {
                var b = Batch(1, dims);
                b.GetRow(0).Span.Fill(0.25f);
                b.GetRow(0).Span[at] = value;
                Assert.Equal(InferenceFailureCause.InvalidVector, FailureClassifier.OfRow(b.StatusOf(0), b.Row(0)));
                b.Release();
            }
        }
    }

    [Fact]
    public void Large_finite_values_whose_sum_overflows_are_still_valid()
    {
        var b = Batch(1, 16);
        b.GetRow(0).Span.Fill(float.MaxValue);

        Assert.Equal(InferenceFailureCause.None, FailureClassifier.OfRow(b.StatusOf(0), b.Row(0)));
        b.Release();
    }

    [Fact]
    public void SetRow_with_the_wrong_length_marks_the_row_invalid_and_Fail_marks_it_failed()
    {
        var b = Batch(3, 4);
        b.SetRow(0, [1, 2, 3]);
        b.SetRow(1, [1, 2, 3, 4]);
        b.SetRow(2, [1, 2, 3, 4]);
        b.Fail(2);

        Assert.Equal(InferenceFailureCause.InvalidVector, FailureClassifier.OfRow(b.StatusOf(0), b.Row(0)));
        Assert.Equal(InferenceFailureCause.None, FailureClassifier.OfRow(b.StatusOf(1), b.Row(1)));
        Assert.Equal(InferenceFailureCause.Error, FailureClassifier.OfRow(b.StatusOf(2), b.Row(2)));
        Assert.Throws<ArgumentOutOfRangeException>(() => b.Fail(3));
        Assert.Throws<ArgumentOutOfRangeException>(() => b.GetRow(-1));
        b.Release();
    }
}
